--- queue_jobs.errors: the error objects of the client and how the key is kept out of them.
-- Every error a public function returns passes through fail(), which replaces every echo of
-- the API key in every string of it (keys of tables too, at any depth); text is cut only
-- after that (show, one_line), so no part of a key survives a cut.
local core = require "queue_jobs.core"
local policy = require "queue_jobs.policy"

local type, next, pairs, ipairs, tostring = type, next, pairs, ipairs, tostring
local fmt = string.format
local make_error, core_redact = core.error, core.redact

local Errors = {}

--- An invalid_argument error: "op: path msg".
function Errors.invalid(op, path, msg)
  return make_error { kind = "invalid_argument", message = op .. ": " .. path .. " " .. msg,
    path = path, retryable = false }
end

--- A redactor for a key that has no C handle yet (client options, queue_jobs.create): an
-- object with :redact(s), like the handle. Keys that are not strings redact nothing.
function Errors.key_redactor(key)
  if type(key) ~= "string" then key = "" end
  return { redact = function(_, s) return core_redact(key, s) end }
end

-- Replaces every echo of the key in every string of v, keys of tables included, at any depth.
local function redact(red, v, seen)
  if type(v) == "string" then return red:redact(v) end
  if type(v) == "table" then
    seen = seen or {}
    if seen[v] then return v end
    seen[v] = true
    local renamed
    for k, x in next, v do
      local y = redact(red, x, seen)
      if y ~= x then v[k] = y end
      if type(k) == "string" then
        local k2 = red:redact(k)
        if k2 ~= k then
          renamed = renamed or {}
          renamed[k] = k2
        end
      end
    end
    for k, k2 in pairs(renamed or {}) do
      v[k2], v[k] = v[k], nil
    end
  end
  return v
end
Errors.redact = redact

--- nil, and the error with the key out of it (red: a handle or a key_redactor).
function Errors.fail(red, err)
  return nil, make_error(redact(red, err))
end

--- A value for a message: a string quoted (its first 40 bytes, after the key is redacted out
-- of all of it), a number as it is, anything else by its type.
function Errors.show(v, red)
  if type(v) == "string" then return fmt("%q", policy.one_line(red:redact(v), 40)) end
  if type(v) == "number" then return tostring(v) end
  return type(v)
end

local HTTP_FIELDS = { "title", "detail", "type", "instance", "errors" }

--- The error of a non-2xx answer. body, ctype and location have the key redacted already.
function Errors.http(op, status, body, ctype, location, max_values)
  local p = policy.problem(body, max_values)
  local reason = policy.REASONS[status] or "error"
  local what = p.detail or p.title or p.snippet
  local msg = fmt("%s: HTTP %d %s", op, status, reason)
  if what and what ~= reason and what ~= fmt("%d %s", status, reason) then
    msg = msg .. ": " .. what
  elseif body == "" then
    msg = msg .. " (empty body)"
  end
  if location and status >= 300 and status < 400 then
    msg = msg .. " (redirect to " .. policy.one_line(location, 200) .. " not followed)"
  end
  local err = { kind = "http", status = status, message = msg, snippet = p.snippet,
    content_type = ctype }
  for _, f in ipairs(HTTP_FIELDS) do err[f] = p[f] end
  return err
end

--- The error of a 2xx answer that is not what the operation expects. body: the text with the
-- key redacted, or "" when there is nothing to show.
function Errors.decode(op, status, body, ctype, why)
  return { kind = "decode", status = status, content_type = ctype,
    message = fmt("%s: %s (HTTP %d%s)%s", op, why, status,
      ctype and (", " .. policy.one_line(ctype, 60)) or "",
      body ~= "" and (": " .. policy.one_line(body, 80)) or ""),
    snippet = body ~= "" and policy.one_line(body) or nil }
end

return Errors
