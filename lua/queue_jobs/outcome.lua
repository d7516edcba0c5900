--- queue_jobs.outcome: what a create attempt's end says about the job, in one table
-- (docs/client.md, "Bulk create"). Every create that create_many sends ends as one of:
--
--   "created"      a 2xx whose body is a job: a JSON object whose id is a job id (a UUID)
--   "not_created"  nothing reached the server, or the server said no: a failure to connect,
--                  to resolve the name or to shake hands, a request curl never sent, and the
--                  statuses of NOT_CREATED
--   "ambiguous"    everything else that may have reached the server: a timeout or a lost
--                  connection after sending, 408, 5xx and any other status, a 2xx that is
--                  not a job (not JSON, too large, no id, an id that is not a job id)
--
-- Only an ambiguous create is looked up before it is sent again; a not-created one is sent
-- again as it is. (An error of kind invalid_argument was refused before anything was sent:
-- "invalid".)
local Outcome = {}

--- The statuses that say the server made no job (and never will for this request).
Outcome.NOT_CREATED = { [400] = true, [401] = true, [403] = true, [404] = true, [409] = true,
  [413] = true, [415] = true, [422] = true, [429] = true }

local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

--- is_job(v) -> whether v is a job as a create's answer must be: a table whose id is a UUID.
function Outcome.is_job(v)
  if type(v) ~= "table" then return false end
  local id = v.id
  return type(id) == "string" and #id == 36 and id:find(UUID) ~= nil
end

--- of(job, err) -> "created" | "not_created" | "ambiguous" | "invalid": the class of one
-- create's end (client:create's two results).
function Outcome.of(job, err)
  if job ~= nil then return Outcome.is_job(job) and "created" or "ambiguous" end
  local kind = err.kind
  if kind == "invalid_argument" then return "invalid" end
  if kind == "network" or kind == "timeout" then
    return err.sent == false and "not_created" or "ambiguous"
  end
  if kind == "http" then
    return Outcome.NOT_CREATED[err.status] and "not_created" or "ambiguous"
  end
  return "ambiguous"   -- decode, too_large: a 2xx (or an answer too large to read) that is not a job
end

--- connection_failure(err) -> whether err is a failure to reach the server at all (a
-- not-created network error or timeout that curl reported; not the client's own pacing or
-- deadline, which sent nothing either): what counts toward stopping a run as unreachable.
function Outcome.connection_failure(err)
  return (err.kind == "network" or err.kind == "timeout") and err.sent == false and
    err.curl_code ~= nil
end

return Outcome
