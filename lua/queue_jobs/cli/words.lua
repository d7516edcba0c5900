--- queue_jobs.cli.words: the library's messages in salad-jobs' words (docs/cli.md). The
-- library speaks to a program ("organization_name is required (give it to this call or to
-- queue_jobs.client{})", "wait_many: ids[3] ..."); the command's user knows its flags and
-- environment variables instead. translate(text, command) rewrites what salad-jobs says on
-- stderr, at its boundary (cx:say): the library's own messages stay as they are.

local Words = {}

local REQUIRED = " is required %(give it to this call or to queue_jobs%.client{}%)"

-- The client's settings, as the command line gives them: {field, its name here}.
local SETTINGS = {
  { "organization_name", "--organization (or SALAD_ORGANIZATION)" },
  { "project_name", "--project (or SALAD_PROJECT)" },
  { "api_key", "the API key (SALAD_API_KEY or --api-key-file)" },
  { "base_url", "--base-url (or SALAD_BASE_URL)" },
  { "timeout", "--request-timeout" },
  { "retries", "--retries" },
  { "rate_limit", "--rate-limit" },
}

-- The operations whose name starts a library's message, said as the command's name instead.
local OPERATIONS = { wait_many = true, create_many = true, cancel_many = true, resubmit = true }

--- translate(text, command) -> text in the command line's words (command: the command's name,
-- "submit", "queues"...; nil before one is known).
function Words.translate(text, command)
  local n
  text, n = text:gsub("^[%w_]+: organization_name" .. REQUIRED,
    "no organization: give --organization ORG or set SALAD_ORGANIZATION")
  if n > 0 then return text end
  text, n = text:gsub("^[%w_]+: project_name" .. REQUIRED, "no project: give --project PROJECT or set SALAD_PROJECT")
  if n > 0 then return text end
  for _, s in ipairs(SETTINGS) do
    text, n = text:gsub("^client: " .. s[1] .. " ", s[2] .. " ")
    if n > 0 then return text end
  end
  text = text:gsub(" %(a table with string keys%)", "")
  text = text:gsub("the deadline would pass while pacing to rate_limit",
    "--timeout would pass while pacing to --rate-limit")
  text, n = text:gsub("^create_many: item (%d+): ", "line %1: ")
  if n > 0 then return text end
  text, n = text:gsub("^[%w_]+: queue_name ", command == "queues" and "the queue's name " or "--queue ")
  if n > 0 then return text end
  text, n = text:gsub("^%a+_queue: display_name ", "--display-name ")
  if n > 0 then return text end
  text, n = text:gsub("^%a+_queue: description ", "--description ")
  if n > 0 then return text end
  text, n = text:gsub("^[%w_]+: ids%[(%d+)%] ", "job id #%1 ")
  if n > 0 then return text end
  text, n = text:gsub("^[%w_]+: id ", "the id ")
  if n > 0 then return text end
  local op, rest = text:match("^([%w_]+): (.*)$")
  if op and OPERATIONS[op] and command then return command .. ": " .. rest end
  return text
end

return Words
