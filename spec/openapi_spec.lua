-- The emulator's answers against the API's OpenAPI file (shared/openapi/salad-cloud.yaml, one
-- level above the repository): real exchanges with the queue, job and webhook secret key
-- endpoints, recorded over raw HTTP, then checked by tools/openapi_check.py (status declared,
-- body valid against the response's schema). It stands in for a Prism validation proxy,
-- which needs the network; docs/emulator.md, "In specs".
local helpers = require "support.helpers"

local json = helpers.json
local null = require("queue_jobs.core").null
local KEY = "sk-openapi-spec-4c1e07b9"
local ROOT = os.getenv("QJ_ROOT") or "."
local OPENAPI = ROOT .. "/../shared/openapi/salad-cloud.yaml"
local CHECKER = ROOT .. "/tools/openapi_check.py"
local PYTHON = os.getenv("PYTHON") or "python3"
local QUEUES = "/organizations/acme-corp/projects/dev-env/queues"
local SECRET = "/organizations/acme-corp/webhook-secret-key"

-- check(exchanges [, options [, openapi]]) -> exit code, the checker's stdout and stderr: the
-- exchanges written to a file and checked against the OpenAPI file (or the one at openapi).
local function check(exchanges, options, openapi)
  local path = os.tmpname()
  helpers.write_file(path, assert(json.encode(exchanges)))
  local argv = { PYTHON, CHECKER }
  for _, o in ipairs(options or {}) do argv[#argv + 1] = o end
  argv[#argv + 1] = openapi or OPENAPI
  argv[#argv + 1] = path
  local _, out, code = helpers.run(argv, { plain = true, stderr = true })
  os.remove(path)
  return code, out
end

describe("the emulator's answers against the OpenAPI file", function()
  local emu
  local exchanges = {}

  -- record(name, operation_id, method, path, opts) -> status, decoded body (or nil): one
  -- request, its answer kept as it came (status, Content-Type, body text).
  local function record(name, op, method, path, opts)
    local status, body, headers = emu:request(method, path, opts)
    assert(status, body)
    exchanges[#exchanges + 1] = { name = name, operation_id = op, status = status,
      content_type = headers["content-type"], body = body }
    return status, body ~= "" and json.decode(body) or nil
  end

  setup(function()
    emu = helpers.start_emulator { args = { "--api-key", KEY } }
  end)
  teardown(function()
    assert.are.equal(0, emu:stop(), emu.stderr)
  end)

  it("finds the checker and the OpenAPI file", function()
    assert.is_true(helpers.read_file(OPENAPI) ~= nil, "no " .. OPENAPI)
    local ok, out = helpers.run({ PYTHON, "-c", "import yaml, jsonschema" }, { plain = true, stderr = true })
    assert.is_true(ok, PYTHON .. " lacks PyYAML or jsonschema (sh tools/deps.sh installs them): " .. out)
  end)

  it("records the queue, job and secret key endpoints, and the checker finds no violation", function()
    -- queues
    local st, q = record("create_queue 201", "create_queue", "POST", QUEUES,
      { json = { name = "batch-1", display_name = "Batch 1", description = "the first batch" } })
    assert.are.equal(201, st)
    assert.are.equal("batch-1", q.name)
    assert.are.equal(409, (record("create_queue 409 (exists)", "create_queue", "POST", QUEUES,
      { json = { name = "batch-1" } })))
    assert.are.equal(400, (record("create_queue 400 (bad name)", "create_queue", "POST", QUEUES,
      { json = { name = "Batch_1" } })))
    assert.are.equal(400, (record("create_queue 400 (no name)", "create_queue", "POST", QUEUES,
      { json = { display_name = "No name" } })))
    assert.are.equal(201, (record("create_queue 201 (name only)", "create_queue", "POST", QUEUES,
      { json = { name = "bare" } })))
    assert.are.equal(200, (record("list_queues 200", "list_queues", "GET", QUEUES)))
    assert.are.equal(200, (record("get_queue 200", "get_queue", "GET", QUEUES .. "/batch-1")))
    assert.are.equal(401, (record("get_queue 401 (wrong key)", "get_queue", "GET", QUEUES .. "/batch-1",
      { api_key = "sk-not-this-one" })))
    st, q = record("update_queue 200", "update_queue", "PATCH", QUEUES .. "/batch-1",
      { json = { description = "new, and longer" } })
    assert.are.equal(200, st)
    assert.are.equal("new, and longer", q.description)
    st, q = record("update_queue 200 (null clears)", "update_queue", "PATCH", QUEUES .. "/batch-1",
      { json = { description = null, display_name = null } })
    assert.are.equal(200, st)
    assert.is_nil(q.description)
    assert.are.equal(400, (record("update_queue 400 (name)", "update_queue", "PATCH", QUEUES .. "/batch-1",
      { json = { name = "other" } })))
    -- jobs, in the queue made above
    local jobs = QUEUES .. "/batch-1/jobs"
    local job
    st, job = record("create_queue_job 201", "create_queue_job", "POST", jobs,
      { json = { input = { prompt = "a cat" }, metadata = { line = 1 },
        webhook = "https://example.com/hooks/salad?batch=1" } })
    assert.are.equal(201, st)
    assert.are.equal("https://example.com/hooks/salad?batch=1", job.webhook)
    local _, plain = record("create_queue_job 201 (input only)", "create_queue_job", "POST", jobs,
      { json = { input = 42 } })
    local _, done = record("create_queue_job 201 (to succeed)", "create_queue_job", "POST", jobs,
      { json = { input = "x" } })
    local _, failed = record("create_queue_job 201 (to fail)", "create_queue_job", "POST", jobs,
      { json = { input = "y" } })
    assert.are.equal(200, (emu:set_status(done.id, "running")))
    assert.are.equal(200, (emu:set_status(done.id, "succeeded", { answer = 42 })))
    assert.are.equal(200, (emu:set_status(failed.id, "failed", { error = "boom" })))
    assert.are.equal(400, (record("create_queue_job 400 (no input)", "create_queue_job", "POST", jobs,
      { json = { metadata = { line = 2 } } })))
    assert.are.equal(400, (record("create_queue_job 400 (not JSON)", "create_queue_job", "POST", jobs,
      { body = "{input", headers = { ["Content-Type"] = "application/json" } })))
    assert.are.equal(200, (record("get_queue_job 200", "get_queue_job", "GET", jobs .. "/" .. job.id)))
    assert.are.equal(200, (record("get_queue_job 200 (succeeded)", "get_queue_job", "GET", jobs .. "/" .. done.id)))
    assert.are.equal(200, (record("get_queue_job 200 (failed)", "get_queue_job", "GET", jobs .. "/" .. failed.id)))
    assert.are.equal(200, (record("list_queue_jobs 200", "list_queue_jobs", "GET", jobs)))
    assert.are.equal(200, (record("list_queue_jobs 200 (a page)", "list_queue_jobs", "GET",
      jobs .. "?page=2&page_size=2")))
    assert.are.equal(400, (record("list_queue_jobs 400 (page 0)", "list_queue_jobs", "GET", jobs .. "?page=0")))
    assert.are.equal(202, (record("delete_queue_job 202", "delete_queue_job", "DELETE", jobs .. "/" .. plain.id)))
    assert.are.equal(200, (record("get_queue_job 200 (cancelled)", "get_queue_job", "GET", jobs .. "/" .. plain.id)))
    assert.are.equal(404, (record("get_queue_job 404", "get_queue_job", "GET",
      jobs .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211")))
    assert.are.equal(404, (record("delete_queue_job 404", "delete_queue_job", "DELETE",
      jobs .. "/7dcd6922-50e9-4d56-89b5-91cde26f0211")))
    -- the webhook secret key
    assert.are.equal(200, (record("get_webhook_secret_key 200", "get_webhook_secret_key", "GET", SECRET)))
    assert.are.equal(200, (record("update_webhook_secret_key 200", "update_webhook_secret_key", "POST", SECRET)))
    -- a queue deleted
    assert.are.equal(202, (record("delete_queue 202", "delete_queue", "DELETE", QUEUES .. "/batch-1")))
    assert.are.equal(404, (record("get_queue 404", "get_queue", "GET", QUEUES .. "/batch-1")))
    assert.are.equal(404, (record("delete_queue 404", "delete_queue", "DELETE", QUEUES .. "/batch-1")))
    assert.are.equal(404, (record("update_queue 404", "update_queue", "PATCH", QUEUES .. "/batch-1",
      { json = { description = "x" } })))
    assert.are.equal(404, (record("list_queue_jobs 404", "list_queue_jobs", "GET", jobs)))
    assert.are.equal(404, (record("create_queue_job 404", "create_queue_job", "POST", jobs,
      { json = { input = 1 } })))

    -- The emulator sends its errors as application/problem+json (docs/emulator.md,
    -- "Refusals"), where the spec declares application/json: the one difference, which a
    -- strict proxy such as Prism reports. Their bodies are checked against ProblemDetails
    -- all the same (--accept-problem-json), and the strict run must report that type, on
    -- every error answer, and nothing else.
    local code, out = check(exchanges, { "--accept-problem-json" })
    assert.are.equal(0, code, out)
    assert.matches("openapi_check: " .. #exchanges .. " exchanges, 0 violations", out, 1, true)
    code, out = check(exchanges)
    assert.are.equal(1, code, out)
    local errors = 0
    for _, ex in ipairs(exchanges) do
      if ex.status >= 400 then
        errors = errors + 1
        assert.matches(ex.name .. " ", out, 1, true)
      end
    end
    local reported = 0
    for line in out:gmatch("[^\n]+") do
      if not line:find("^openapi_check: ") then
        reported = reported + 1
        assert.matches("content type 'application/problem+json; charset=utf-8' is not one the spec declares (application/json)",
          line, 1, true)
      end
    end
    assert.are.equal(errors, reported)
    assert.is_true(errors >= 15)
  end)

  it("reports a broken answer: a field missing, a wrong type, an undeclared status, a body where none is", function()
    local status, body, headers = emu:request("POST", QUEUES, { json = { name = "broken" } })
    assert.are.equal(201, status)
    local q = json.decode(body)
    local ct = headers["content-type"]
    local function without(t, k)
      local c = {}
      for kk, v in pairs(t) do if kk ~= k then c[kk] = v end end
      return c
    end
    local with_length = without(q, "name")
    with_length.current_queue_length = "0"
    local broken = {
      { name = "no-name", operation_id = "get_queue", status = 200, content_type = ct,
        body = assert(json.encode(without(q, "name"))) },
      { name = "string-length", operation_id = "get_queue", status = 200, content_type = ct,
        body = assert(json.encode(with_length)) },
      { name = "no-status", operation_id = "delete_queue_job", status = 200, content_type = ct, body = body },
      { name = "body-on-202", operation_id = "delete_queue", status = 202, body = body },
      { name = "not-json", operation_id = "get_queue", status = 200, content_type = ct, body = "{" },
      { name = "bad-id", operation_id = "get_queue", status = 200, content_type = ct,
        body = (body:gsub('"id":"[^"]*"', '"id":"not-a-uuid"')) },
      { name = "unknown-op", operation_id = "no_such_operation", status = 200, content_type = ct, body = body },
      { name = "200-for-201", operation_id = "create_queue", status = 200, content_type = ct, body = body },
      { name = "bad-problem", operation_id = "get_queue", status = 404, content_type = "application/problem+json",
        body = '{"status":"404","title":""}' },
    }
    local code, out = check(broken, { "--accept-problem-json" })
    assert.are.equal(1, code, out)
    assert.matches("no-name get_queue 200 $: 'name' is a required property", out, 1, true)
    assert.matches("string-length get_queue 200 $.current_queue_length: '0' is not of type 'integer'", out, 1, true)
    assert.matches("string-length get_queue 200 $: 'name' is a required property", out, 1, true)
    assert.matches("no-status delete_queue_job 200 $: success status 200 is not the operation's (202)", out, 1, true)
    assert.matches("body-on-202 delete_queue 202 $: the spec declares no body for this status", out, 1, true)
    assert.matches("not-json get_queue 200 $: the body is not JSON", out, 1, true)
    assert.matches("bad-id get_queue 200 $.id: 'not-a-uuid' is not a 'uuid'", out, 1, true)
    assert.matches("unknown-op no_such_operation 200 $: no such operation in the spec", out, 1, true)
    assert.matches("200-for-201 create_queue 200 $: success status 200 is not the operation's (201)", out, 1, true)
    assert.matches("bad-problem get_queue 404 $.status: '404' is not of type 'integer'", out, 1, true)
    assert.matches("bad-problem get_queue 404 $.title: ''", out, 1, true)   -- (the wording is jsonschema's)
    assert.matches("openapi_check: 9 exchanges, 11 violations", out, 1, true)
    -- and the same answer, unbroken, passes
    code, out = check { { name = "whole", operation_id = "get_queue", status = 200, content_type = ct, body = body } }
    assert.are.equal(0, code, out)
  end)

  it("reads OpenAPI 3.0's nullable as a type that admits null, and only there", function()
    -- salad-cloud.yaml has nullable fields only in schemas no queue answer uses: a small
    -- document of its own, found by method and path template.
    local doc = os.tmpname()
    helpers.write_file(doc, table.concat({
      "openapi: 3.0.3",
      "info: {title: t, version: '1'}",
      "paths:",
      "  /things/{id}:",
      "    get:",
      "      responses:",
      "        '200':",
      "          description: OK",
      "          content:",
      "            application/json:",
      "              schema: {$ref: '#/components/schemas/Thing'}",
      "components:",
      "  schemas:",
      "    Thing:",
      "      type: object",
      "      required: [note, kind]",
      "      properties:",
      "        note: {type: string, nullable: true}",
      "        kind: {type: string, enum: [a, b], nullable: true}",
      "        size: {type: integer}",
    }, "\n") .. "\n")
    local function thing(name, body)
      return { name = name, method = "get", path = "/things/{id}", status = 200,
        content_type = "application/json", body = body }
    end
    local code, out = check({ thing("nulls", '{"note":null,"kind":null}'),
      thing("values", '{"note":"x","kind":"a"}'), thing("size-null", '{"note":"x","kind":"b","size":null}'),
      thing("kind-c", '{"note":null,"kind":"c"}') }, nil, doc)
    os.remove(doc)
    assert.are.equal(1, code, out)
    assert.matches("size-null GET /things/{id} 200 $.size: None is not of type 'integer'", out, 1, true)
    assert.matches("kind-c GET /things/{id} 200 $.kind: 'c' is not one of", out, 1, true)
    assert.matches("openapi_check: 4 exchanges, 2 violations", out, 1, true)
  end)
end)
