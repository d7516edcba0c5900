--- queue_jobs.validate: the checks of what a call names and sends, before anything is sent:
-- organization, project and queue names, job ids, pages, the body of a create, and the shape
-- of a list answer and of a webhook secret key's. Each check returns its result, or nil and
-- an invalid_argument error whose quoted values have the key redacted (red: the client's
-- handle or a key_redactor).
local core = require "queue_jobs.core"
local constants = require "queue_jobs.constants"
local errors = require "queue_jobs.errors"
local policy = require "queue_jobs.policy"
local compat = require "queue_jobs.compat"

local type, next, getmetatable, tointeger = type, next, getmetatable, compat.tointeger
local fmt, utf8_len = string.format, compat.utf8_len
local scan_keys, encode_job, make_error = core.check_keys, core.encode_job, core.error
local array_mt, empty_array, null = core.array_mt, core.empty_array, core.null
local invalid, show = errors.invalid, errors.show

local Validate = {}

-- The name rule is queue_jobs.constants'; validate's users keep asking validate for it.
Validate.is_name = constants.is_name
local is_name = Validate.is_name

Validate.NAME_RULE = constants.NAME_RULE
local NAME_RULE = Validate.NAME_RULE

--- An organization, project or queue name: nil when good, else the error.
function Validate.name(op, field, v, red)
  if v == nil then
    return invalid(op, field, "is required (give it to this call or to queue_jobs.client{})")
  end
  if not is_name(v) then return invalid(op, field, NAME_RULE .. " (got " .. show(v, red) .. ")") end
end

local function is_uuid(s)
  return type(s) == "string" and #s == 36 and
    s:find("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$") ~= nil
end

--- A job id (a UUID): nil when good, else the error.
function Validate.id(op, v, red)
  if v == nil then return invalid(op, "id", "is required (a job id, a UUID)") end
  if not is_uuid(v) then
    return invalid(op, "id", "must be a UUID like 7dcd6922-50e9-4d56-89b5-91cde26f0211 (got " ..
      show(v, red) .. ")")
  end
end

--- An integer within lo..hi: the integer, or nil, err.
function Validate.int(op, field, v, lo, hi, red)
  local i = tointeger(v)
  if i == nil or i < lo or i > hi then
    return nil, invalid(op, field, fmt("must be an integer within %d..%d (got %s)", lo, hi,
      show(v, red)))
  end
  return i
end
local check_int = Validate.int

--- page and page_size of list and jobs (each nil when not given), or nil, nil, err.
function Validate.pages(op, a, red)
  local page, page_size = a.page, a.page_size
  local err
  if page ~= nil then
    page, err = check_int(op, "page", page, 1, 2147483647, red)
    if not page then return nil, nil, err end
  end
  if page_size ~= nil then
    page_size, err = check_int(op, "page_size", page_size, 1, 100, red)
    if not page_size then return nil, nil, err end
  end
  return page, page_size
end

--- The body of a create, or nil, err (with the JSON path of bad input).
function Validate.create_body(op, a)
  local input, metadata, webhook = a.input, a.metadata, a.webhook
  if input == nil then
    return nil, invalid(op, "input", "is required (any JSON value; queue_jobs.null for null)")
  end
  if metadata ~= nil then
    if type(metadata) ~= "table" or metadata == empty_array or getmetatable(metadata) == array_mt then
      return nil, invalid(op, "metadata", "must be a JSON object (a table with string keys)")
    end
    local n, k = scan_keys(metadata) -- k: the first key that is not a string
    if k ~= nil then
      return nil, invalid(op, "metadata", "must be a JSON object (a table with string keys)")
    end
    if n > 20 then
      return nil, invalid(op, "metadata", fmt("must have at most 20 properties (got %d)", n))
    end
  end
  if webhook ~= nil then
    if type(webhook) ~= "string" then
      return nil, invalid(op, "webhook", "must be a string URL (got " .. type(webhook) .. ")")
    end
    local n = utf8_len(webhook)
    if not n then return nil, invalid(op, "webhook", "must be valid UTF-8") end
    if n < 1 or n > 2048 then
      return nil, invalid(op, "webhook", fmt("must be 1..2048 characters (got %d)", n))
    end
    if webhook:find("%c") or not webhook:find("^[hH][tT][tT][pP][sS]?://[^/%s]") then
      return nil, invalid(op, "webhook", "must be an absolute http(s) URL without control characters")
    end
  end
  local body, err = encode_job(input, metadata, webhook) -- json.encode{input = .., ...}
  if not body then
    local path = (err.path or "$"):gsub("^%$%.?", "")
    local why = err.message:gsub("^json%.encode: ", ""):gsub(" at %$.*$", "")
    return nil, make_error { kind = "invalid_argument", path = path, retryable = false,
      message = fmt("%s: %s: %s", op, path, why) }
  end
  return body
end

--- Why a decoded list answer is not {"items": [object, ...]}, or nil when it is. what names
-- an item in the reason: "job" (list) or "queue" (list_queues).
function Validate.list_problem(v, what)
  local items = v.items
  if type(items) ~= "table" or getmetatable(items) == nil and next(items) ~= nil then
    return "response has no items array"
  end
  for i = 1, #items do
    local job = items[i]
    if type(job) ~= "table" or getmetatable(job) ~= nil then
      return fmt("response item %d is not a %s object (got %s)", i, what or "job",
        getmetatable(job) ~= nil and "an array" or type(job))
    end
  end
end

--- Why a decoded answer of the webhook secret key is not {"secret_key": "<base64>"}, or nil
-- when it is. The reason never quotes the value: a key a little wrong is still a secret.
function Validate.secret_problem(v)
  local key = v.secret_key
  if key == nil then return "response has no secret_key" end
  if type(key) ~= "string" then
    return fmt("response's secret_key is not a string (got %s)", key == null and "null" or
      type(key) ~= "table" and type(key) or getmetatable(key) ~= nil and "an array" or "an object")
  end
  local why = policy.secret_problem(key)
  if why then return "response's secret_key is not base64 of 24 to 128 bytes: it " .. why end
end

-- ---- queues --------------------------------------------------------------------------

-- A queue's display_name (QueuePrototype, QueuePatch): 2..63 characters of letters, digits,
-- space, ',', '-' and '.' (the API's ^[ ,-.0-9A-Za-z]+$, where ",-." is a range of those three).
local DISPLAY_NAME_RULE = "must be 2..63 characters of A-Z, a-z, 0-9, space, ',', '-' and '.'"

local function display_name_problem(op, v, red)
  if type(v) ~= "string" or #v < 2 or #v > 63 or v:find("[^ ,%-.0-9A-Za-z]") then
    return invalid(op, "display_name", DISPLAY_NAME_RULE .. " (got " .. show(v, red) .. ")")
  end
end

-- A queue's description: 0..500 characters of UTF-8 on one line (the API's ^.*$: no line
-- feed, carriage return, U+2028 or U+2029).
local function description_problem(op, v, red)
  if type(v) ~= "string" then
    return invalid(op, "description", "must be a string (got " .. show(v, red) .. ")")
  end
  local n = utf8_len(v)
  if not n then return invalid(op, "description", "must be valid UTF-8") end
  if n > 500 then
    return invalid(op, "description", fmt("must be at most 500 characters (got %d)", n))
  end
  if v:find("[\r\n]") or v:find("\226\128[\168\169]") then
    return invalid(op, "description", "must be one line (no line feed, carriage return, " ..
      "U+2028 or U+2029)")
  end
end

--- The body of create_queue (QueuePrototype: name, display_name?, description?), or nil,
-- err. queue_name was checked with the URL; neither field may be null here.
function Validate.queue_body(op, a, red)
  local display_name, description = a.display_name, a.description
  local err = display_name ~= nil and display_name_problem(op, display_name, red) or
    description ~= nil and description_problem(op, description, red)
  if err then return nil, err end
  return (core.json.encode { name = a.queue_name, display_name = display_name,
    description = description })
end

--- The body of update_queue (QueuePatch, a JSON merge patch: display_name?, description?,
-- each a value or queue_jobs.null, which clears it), or nil, err.
function Validate.queue_patch(op, a, red)
  local display_name, description = a.display_name, a.description
  local err = display_name ~= nil and display_name ~= null and
      display_name_problem(op, display_name, red) or
    description ~= nil and description ~= null and description_problem(op, description, red)
  if err then return nil, err end
  -- (an empty patch is a valid merge patch: it changes nothing and answers the queue)
  return (core.json.encode { display_name = display_name, description = description })
end

local function pct(s)
  return (s:gsub("[^%w%-._~]", function(c) return fmt("%%%02X", c:byte()) end))
end

--- The jobs URL of a queue under base, or nil, err.
function Validate.jobs_url(op, base, org, proj, queue, red)
  local err = Validate.name(op, "organization_name", org, red) or
    Validate.name(op, "project_name", proj, red) or Validate.name(op, "queue_name", queue, red)
  if err then return nil, err end
  return base .. "/organizations/" .. pct(org) .. "/projects/" .. pct(proj) ..
    "/queues/" .. pct(queue) .. "/jobs"
end

--- The queues URL of a project under base, or nil, err.
function Validate.queues_url(op, base, org, proj, red)
  local err = Validate.name(op, "organization_name", org, red) or
    Validate.name(op, "project_name", proj, red)
  if err then return nil, err end
  return base .. "/organizations/" .. pct(org) .. "/projects/" .. pct(proj) .. "/queues"
end

--- The URL of a queue under base, or nil, err.
function Validate.queue_url(op, base, org, proj, queue, red)
  local url, err = Validate.queues_url(op, base, org, proj, red)
  if not url then return nil, err end
  err = Validate.name(op, "queue_name", queue, red)
  if err then return nil, err end
  return url .. "/" .. pct(queue)
end

--- The URL of an organization's webhook secret key under base, or nil, err.
function Validate.secret_url(op, base, org, red)
  local err = Validate.name(op, "organization_name", org, red)
  if err then return nil, err end
  return base .. "/organizations/" .. pct(org) .. "/webhook-secret-key"
end

--- The URL of one job under a jobs URL, or nil, err.
function Validate.job_url(op, jobs, id, red)
  local err = Validate.id(op, id, red)
  if err then return nil, err end
  return jobs .. "/" .. pct(id:lower())
end

return Validate
