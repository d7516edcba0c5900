--- queue_jobs.cli.jsonl: the lines of a salad-jobs submit file (docs/cli.md, "submit"), each
-- turned into a job prototype, or into an error that names the line and the JSON path.
--
-- A line holds one JSON value: {"input": ..., "metadata": ..., "webhook": ...} (input
-- required, nothing else), or with input_only the input itself. A line of only spaces is
-- skipped. Paths are JSONPath, from the line's root: $.input.prompts[0] ($ is the input
-- itself with input_only), so that they point into the text of the line.
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"
local validate = require "queue_jobs.validate"
local batch = require "queue_jobs.batch"

local type, next, tostring = type, next, tostring
local fmt, byte, find, sub = string.format, string.byte, string.find, string.sub
local decode, raw, decode_members = core.json.decode, core.json.raw, core.decode_members

local Jsonl = {}

local FIELDS = { input = true, metadata = true, webhook = true }

--- member(path, key) -> path.key, or path["key"] when key is not a plain name.
local function member(path, key)
  if find(key, "^[%a_][%w_]*$") then return path .. "." .. key end
  return path .. "[" .. core.json.encode(key) .. "]"
end
Jsonl.member = member

-- The end of the JSON string that starts at text[i] (a quote): the index of its closing
-- quote, or nil when the text ends first.
local function string_end(text, i)
  local j = i + 1
  while true do
    local a = find(text, '[\\"]', j)
    if not a then return nil end
    if byte(text, a) == 34 then return a end   -- "
    j = a + 2                                  -- a backslash and the byte it escapes
  end
end

--- path_at(text, at) -> the JSONPath of the value that byte `at` of text (JSON, maybe bad
-- from some byte on) lies in or follows: "$" at the top, "$.input.a[2]" inside. Read from the
-- text's start, as a decoder reads it; what follows `at` does not matter.
function Jsonl.path_at(text, at)
  local stack, n = {}, 0   -- per open container: {array, index} or {object, key, state}
  local i = 1
  while i < at do
    local c = byte(text, i)
    local top = stack[n]
    if c == 123 or c == 91 then                 -- { [
      n = n + 1
      stack[n] = c == 91 and { arr = true, index = 0 } or { key = nil, want_key = true }
    elseif c == 125 or c == 93 then             -- } ]
      stack[n], n = nil, n > 0 and n - 1 or 0
    elseif c == 44 and top then                 -- ,
      if top.arr then top.index = top.index + 1 else top.want_key, top.key = true, nil end
    elseif c == 34 then                         -- a string: an object's key, or a value
      local e = string_end(text, i)
      if not e or e >= at then break end
      if top and not top.arr and top.want_key then
        local ok, k = pcall(decode, sub(text, i, e))
        top.key, top.want_key = ok and type(k) == "string" and k or sub(text, i + 1, e - 1), false
      end
      i = e
    end
    i = i + 1
  end
  local path = "$"
  for k = 1, n do
    local s = stack[k]
    if s.arr then
      path = path .. "[" .. s.index .. "]"
    elseif s.key then
      path = member(path, s.key)
    end
  end
  return path
end

-- "line N: PATH: why".
local function bad(n, path, why)
  return fmt("line %d: %s: %s", n, path, why)
end

--- why(err) -> an invalid_argument error's message without its "op: path " start, nor the
-- library's advice to pass reconcile = false (an option of create_many, not of salad-jobs).
function Jsonl.why(err)
  local m, p = err.message, err.path
  if p then
    local _, e = find(m, ": " .. p .. " ", 1, true)
    if e then m = sub(m, e + 1) end
  end
  return (m:gsub("%s*%(or pass reconcile = false%)", ""))
end

--- path_of(err, input_only) -> the JSONPath of a create's invalid_argument error: its path
-- (metadata, input.x...) from the line's root.
function Jsonl.path_of(err, input_only)
  local p = err.path
  if not p or p == "" then return "$" end
  if input_only then
    p = p:gsub("^input", "")
    return "$" .. p
  end
  return "$." .. p
end

-- The bad JSON of line n: its JSONPath and the decoder's reason.
local function bad_json(text, n, err)
  local at = compat.math_type(err.offset) == "integer" and err.offset or #text + 1   -- where it stops
  local why = tostring(err.message):gsub("^json%.%a+: ", ""):gsub(
    " at line %d+, column (%d+) %(byte %d+%)$", " (column %1)")
  return nil, bad(n, Jsonl.path_at(text, at), why)
end

--- item(text, n, opts) -> prototype | false (a blank line) | nil, message: line n of the
-- file as the arguments of a create (input, metadata, webhook), checked as far as opts asks:
-- the JSON and the fields always; with opts.full also what create itself would check (the
-- metadata's size, the webhook, the input's encoding) and, with opts.reconcile, room in the
-- metadata for the batch item key. The input is the line's own text (json.raw): it is sent
-- byte for byte as written, never through Lua's numbers, and so are the metadata's values.
function Jsonl.item(text, n, opts)
  if n == 1 and sub(text, 1, 3) == "\239\187\191" then text = sub(text, 4) end   -- a UTF-8 BOM
  if not find(text, "[^ \t\r\n]") then return false end
  local proto
  if opts.input_only then
    local r, err = raw(text)
    if not r then return bad_json(text, n, err) end
    proto = { input = r }
  else
    local m, err = decode_members(text)
    if m == nil then return bad_json(text, n, err) end
    if not m then
      return nil, bad(n, "$", 'must be a JSON object {"input": ..., "metadata": ..., ' ..
        '"webhook": ...} (or use --input-only)')
    end
    for k in next, m do
      if not FIELDS[k] then
        return nil, bad(n, member("$", k), "is not a field of a job (input, metadata, webhook)")
      end
    end
    if m.input == nil then return nil, bad(n, "$.input", "is required") end
    proto = { input = raw(m.input) }   -- (valid: decode_members checked it)
    -- a null metadata or webhook is one not given, as the API reads it
    if m.metadata == "null" then m.metadata = nil end
    if m.webhook == "null" then m.webhook = nil end
    if m.metadata then                  -- its values as written too, when it is an object
      local members = decode_members(m.metadata)
      if members then
        for k, v in next, members do members[k] = raw(v) end
        proto.metadata = members
      else
        proto.metadata = decode(m.metadata)   -- not an object: create says so
      end
    end
    if m.webhook then proto.webhook = decode(m.webhook) end
  end
  if opts.full then
    local ok, e = validate.create_body("create", proto)
    if ok and opts.reconcile then ok, e = batch.tag("create", proto.metadata, "0", n) end
    if not ok then return nil, bad(n, Jsonl.path_of(e, opts.input_only), Jsonl.why(e)) end
  end
  return proto
end

return Jsonl
