#!/usr/bin/env python3
"""Checks recorded HTTP exchanges against an OpenAPI document: the offline stand-in for a
Prism validation proxy (spec/openapi_spec.lua records the emulator's answers and runs this).

    python3 tools/openapi_check.py [--accept-problem-json] SPEC.yaml EXCHANGES.json

--accept-problem-json: an answer of type application/problem+json (RFC 9457's type for a
ProblemDetails) is taken where the spec declares application/json, and its body validated
against that schema. The emulator sends its errors so (docs/emulator.md, "Refusals"); the spec
declares application/json for them, which a strict proxy reports.

EXCHANGES.json is a JSON array; each exchange is an object with
    operation_id   the operation's operationId, or else
    method, path   the HTTP method and the path template as the spec writes it
                   ("/organizations/{organization_name}/webhook-secret-key")
    status         the HTTP status answered (an integer)
    content_type   the Content-Type header answered (absent or null when there was none)
    body           the response body exactly as received (a string; "" for none)
    name           optional: how the exchange is called in the report (else its index)

For each exchange: the operation must exist; the status must be one the operation declares
(its own code, a range such as "4XX", or its `default`, except that a success status must be
one of the operation's own: the spec's default is its error answer); when that response declares no
content the body must be empty, and otherwise the content type must be one it declares and
a JSON body must parse and validate against that media type's schema ($ref resolved within
the document; OpenAPI 3.0's `nullable` read as a type that also admits null; only the formats
listed in FORMATS are checked, every other format passes, since jsonschema has no checker for
most of the spec's formats, such as `url`).

One line per violation on stdout: "NAME OPERATION STATUS JSONPATH: what is wrong".
Exit status: 0 when there is none, 1 when there are some, 2 when the files cannot be read.
Needs PyYAML and jsonschema 4 (Debian 12: python3-yaml, python3-jsonschema; tools/deps.sh).
"""
import copy
import json
import re
import sys
import uuid

import jsonschema
import yaml

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Fields of the spec whose schema is known to be wrong, replaced by a looser one here.
# QueueJob.webhook carries a date-time pattern, maxLength 27 and minLength 20 copied from a
# timestamp field (shared/openapi/README.md, "Known defect"), while real jobs carry the webhook
# URL they were created with; the official SDKs validate against it and reject real jobs. It
# is checked only as a string.
OVERRIDES = {
    ("QueueJob", "webhook"): {"type": "string"},
}

DATE_TIME = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def is_date_time(value):
    """RFC 3339 date-time (jsonschema's own checker needs an optional package)."""
    if not isinstance(value, str):
        return True
    if not DATE_TIME.match(value):
        return False
    month, day = int(value[5:7]), int(value[8:10])
    hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    return 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61


def is_uuid(value):
    """The hyphenated form, as the API writes its ids."""
    if not isinstance(value, str):
        return True
    try:
        return str(uuid.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


def int_range(bits):
    low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return lambda value: not isinstance(value, int) or isinstance(value, bool) or low <= value <= high


# The formats checked. Made empty, then filled, so that the same formats are checked whatever
# jsonschema's version and whichever of its optional format packages are installed.
FORMATS = jsonschema.FormatChecker(formats=())
FORMATS.checks("date-time")(is_date_time)
FORMATS.checks("uuid")(is_uuid)
FORMATS.checks("int32")(int_range(32))
FORMATS.checks("int64")(int_range(64))


def nullable_to_type(node):
    """In place, through the whole document: a schema with OpenAPI 3.0's `nullable: true`
    also admits null (its type gets "null", its enum null)."""
    if isinstance(node, dict):
        if node.get("nullable") is True:
            t = node.get("type")
            if isinstance(t, str):
                node["type"] = [t, "null"]
            elif isinstance(t, list) and "null" not in t:
                node["type"] = t + ["null"]
            if isinstance(node.get("enum"), list) and None not in node["enum"]:
                node["enum"] = node["enum"] + [None]
            del node["nullable"]
        for v in node.values():
            nullable_to_type(v)
    elif isinstance(node, list):
        for v in node:
            nullable_to_type(v)


def load_spec(path):
    with open(path, "rb") as f:
        spec = yaml.safe_load(f)
    spec = copy.deepcopy(spec)
    nullable_to_type(spec)
    schemas = spec.get("components", {}).get("schemas", {})
    for (schema, field), replacement in OVERRIDES.items():
        props = schemas.get(schema, {}).get("properties", {})
        if field in props:
            props[field] = replacement
    return spec


def deref(spec, obj):
    """obj with its local $ref followed (response objects, media types)."""
    seen = set()
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        if ref in seen or not ref.startswith("#/"):
            raise ValueError("cannot resolve " + ref)
        seen.add(ref)
        obj = spec
        for part in ref[2:].split("/"):
            obj = obj[part.replace("~1", "/").replace("~0", "~")]
    return obj


def operations(spec):
    """{operationId: (method, path, operation)} and {(METHOD, path): same}."""
    by_id, by_route = {}, {}
    for path, item in (spec.get("paths") or {}).items():
        for method in METHODS:
            op = item.get(method)
            if isinstance(op, dict):
                entry = (method.upper(), path, op)
                if "operationId" in op:
                    by_id[op["operationId"]] = entry
                by_route[(method.upper(), path)] = entry
    return by_id, by_route


def declared_response(op, status):
    """The key and response object the operation declares for status: its own code, then its
    range ("4XX"), then its default; None, None when it declares none of them."""
    responses = op.get("responses") or {}
    for key in (str(status), str(status)[0] + "XX", str(status)[0] + "xx", "default"):
        if key in responses:
            return key, responses[key]
    return None, None


def media_type_of(content_type):
    return (content_type or "").split(";")[0].strip().lower()


def is_json(media_type):
    return media_type == "application/json" or media_type.endswith("+json")


def json_path(parts):
    out = "$"
    for p in parts:
        out += "[%d]" % p if isinstance(p, int) else "." + str(p)
    return out


def short(text, limit=200):
    return text if len(text) <= limit else text[:limit] + "..."


def check(spec, exchanges, accept_problem_json=False):
    """The violations, as lines."""
    by_id, by_route = operations(spec)
    out = []
    for index, ex in enumerate(exchanges):
        if not isinstance(ex, dict):
            out.append("#%d ? ? $: the exchange is not an object" % index)
            continue
        name = str(ex.get("name", "#%d" % index))
        status = ex.get("status")

        def report(path, what):
            out.append("%s %s %s %s: %s" % (name, label, status, path, what))

        if ex.get("operation_id") is not None:
            label = ex["operation_id"]
            entry = by_id.get(label)
        else:
            label = "%s %s" % (str(ex.get("method", "?")).upper(), ex.get("path", "?"))
            entry = by_route.get((str(ex.get("method", "")).upper(), ex.get("path")))
        if entry is None:
            report("$", "no such operation in the spec")
            continue
        op = entry[2]
        label = op.get("operationId", label)
        if not isinstance(status, int) or isinstance(status, bool):
            report("$", "the exchange has no integer status")
            continue
        key, response = declared_response(op, status)
        if response is None:
            report("$", "status %d is not declared by the operation, which has no default" % status)
            continue
        if key == "default":
            # The default response is the spec's "Unknown Error" (a ProblemDetails, whose
            # fields are all optional): a success answered with a status the operation does
            # not declare (200 for a create's 201) would pass against it, so it is reported.
            successes = sorted(k for k in op.get("responses", {}) if str(k).startswith("2"))
            if 200 <= status < 300 and successes:
                report("$", "success status %d is not the operation's (%s)" % (
                    status, ", ".join(successes)))
                continue
            label += " (status %d undeclared: its default response)" % status
        response = deref(spec, response)
        body = ex.get("body") or ""
        if not isinstance(body, str):
            report("$", "the exchange's body is not a string")
            continue
        content = response.get("content") or {}
        if not content:
            if body != "":
                report("$", "the spec declares no body for this status, got %d bytes" % len(body))
            continue
        media_type = media_type_of(ex.get("content_type"))
        media = next((deref(spec, m) for k, m in content.items() if k.lower() == media_type), None)
        if media is None and accept_problem_json and media_type == "application/problem+json":
            media = next((deref(spec, m) for k, m in content.items()
                          if k.lower() == "application/json"), None)
        if media is None:
            report("$", "content type %r is not one the spec declares (%s)" % (
                ex.get("content_type"), ", ".join(sorted(content))))
            continue
        schema = media.get("schema")
        if schema is None or not is_json(media_type):
            continue
        try:
            value = json.loads(body)
        except ValueError as e:
            report("$", "the body is not JSON (%s)" % e)
            continue
        # The schema is the root, with the document's components beside it so that its
        # local $refs ("#/components/schemas/...") resolve within the file.
        root = dict(schema)
        root["components"] = spec.get("components", {})
        validator = jsonschema.Draft202012Validator(root, format_checker=FORMATS)
        errors = sorted(validator.iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path])
        for e in errors:
            report(json_path(e.absolute_path), short(e.message))
    return out


def main(argv):
    args = argv[1:]
    accept_problem_json = bool(args) and args[0] == "--accept-problem-json"
    if accept_problem_json:
        args = args[1:]
    if len(args) != 2:
        sys.stderr.write("usage: openapi_check.py [--accept-problem-json] SPEC.yaml EXCHANGES.json\n")
        return 2
    try:
        spec = load_spec(args[0])
        with open(args[1], "rb") as f:
            exchanges = json.load(f)
    except (OSError, ValueError, yaml.YAMLError) as e:
        sys.stderr.write("openapi_check: %s\n" % e)
        return 2
    if not isinstance(exchanges, list):
        sys.stderr.write("openapi_check: %s is not a JSON array\n" % args[1])
        return 2
    violations = check(spec, exchanges, accept_problem_json)
    for line in violations:
        print(line)
    print("openapi_check: %d exchanges, %d violations" % (len(exchanges), len(violations)),
          file=sys.stderr)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
