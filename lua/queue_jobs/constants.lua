--- queue_jobs.constants: the facts several modules share, each said once: a job's statuses,
-- the rule of organization, project and queue names, and the limits the client, create_many,
-- salad-jobs and the emulator repeat. Plain data and one pure function; it requires nothing,
-- so every layer may use it (the emulator embeds it: mk/emulator.mk).
local type = type

local Constants = {}

-- A job's status, as the API's QueueJob.status enum lists them.
Constants.STATUSES = { "pending", "running", "succeeded", "cancelled", "failed" }

-- The statuses a job never leaves (what wait and wait_many wait for).
Constants.TERMINAL = { succeeded = true, failed = true, cancelled = true }

-- Organization, project and queue names: 2 to 63 characters of a-z, 0-9 and '-', starting
-- with a letter and ending with a letter or digit.
Constants.NAME_MIN, Constants.NAME_MAX = 2, 63
Constants.NAME_PATTERN = "^[a-z][a-z0-9%-]*[a-z0-9]$"
Constants.NAME_RULE = "must be 2..63 characters of a-z, 0-9 and '-', starting with a letter and" ..
  " ending with a letter or digit"

local NAME_MIN, NAME_MAX, NAME_PATTERN = Constants.NAME_MIN, Constants.NAME_MAX, Constants.NAME_PATTERN

--- is_name(s) -> whether s is a valid organization, project or queue name.
function Constants.is_name(s)
  return type(s) == "string" and #s >= NAME_MIN and #s <= NAME_MAX and s:find(NAME_PATTERN) ~= nil
end

-- A list page holds at most PAGE_SIZE_MAX jobs (the API's page_size maximum).
Constants.PAGE_SIZE_MAX = 100

-- create_many's workers (creates in flight at once): the default and the most.
Constants.CONCURRENCY_DEFAULT, Constants.CONCURRENCY_MAX = 8, 1000

-- A client's retries (further attempts of a request): the most.
Constants.RETRIES_MAX = 100

-- Any number of seconds an option takes (timeouts, deadlines, waits): the most.
Constants.SECONDS_MAX = 1e6

-- The client's default rate limit: requests a minute (the API's).
Constants.RATE_LIMIT_DEFAULT = 240

return Constants
