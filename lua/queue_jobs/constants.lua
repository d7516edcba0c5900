--- queue_jobs.constants: the facts several modules share, each said once: a job's statuses,
-- the rule of organization, project and queue names, and the limits the client, create_many,
-- salad-jobs and the emulator repeat. Plain data and one pure function; it requires nothing,
-- so every layer may use it (the emulator embeds it: mk/emulator.mk).
local type = type

local K = {}

-- A job's status, as the API's QueueJob.status enum lists them.
K.STATUSES = { "pending", "running", "succeeded", "cancelled", "failed" }

-- The statuses a job never leaves (what wait and wait_many wait for).
K.TERMINAL = { succeeded = true, failed = true, cancelled = true }

-- Organization, project and queue names: 2 to 63 characters of a-z, 0-9 and '-', starting
-- with a letter and ending with a letter or digit.
K.NAME_MIN, K.NAME_MAX = 2, 63
K.NAME_PATTERN = "^[a-z][a-z0-9%-]*[a-z0-9]$"
K.NAME_RULE = "must be 2..63 characters of a-z, 0-9 and '-', starting with a letter and" ..
  " ending with a letter or digit"

local NAME_MIN, NAME_MAX, NAME_PATTERN = K.NAME_MIN, K.NAME_MAX, K.NAME_PATTERN

--- is_name(s) -> whether s is a valid organization, project or queue name.
function K.is_name(s)
  return type(s) == "string" and #s >= NAME_MIN and #s <= NAME_MAX and s:find(NAME_PATTERN) ~= nil
end

-- A list page holds at most PAGE_SIZE_MAX jobs (the API's page_size maximum).
K.PAGE_SIZE_MAX = 100

-- create_many's workers (creates in flight at once): the default and the most.
K.CONCURRENCY_DEFAULT, K.CONCURRENCY_MAX = 8, 1000

-- A client's retries (further attempts of a request): the most.
K.RETRIES_MAX = 100

-- Any number of seconds an option takes (timeouts, deadlines, waits): the most.
K.SECONDS_MAX = 1e6

-- The client's default rate limit: requests a minute (the API's).
K.RATE_LIMIT_DEFAULT = 240

return K
