---@meta queue_jobs
-- The LuaLS definition file of the `queue_jobs` module: what `require "queue_jobs"` returns,
-- for the Lua language server's completion, hovers and type checks. Lua never loads it. Point
-- the editor at the folder that holds it (README.md, "Editor types"); `make install` puts it
-- in $(PREFIX)/share/saladcloud-queue-jobs/types/ and the rock in its rock directory, types/.
-- spec/types_spec.lua checks it against the module: every public function and method, every
-- client option and its default, every argument name, every error kind.

-- ---- JSON values -------------------------------------------------------------------------

---A value of JSON as the codec maps it: integers (int64, exact), floats, strings (UTF-8),
---booleans, `queue_jobs.null`, and tables: keys 1..n for an array (or marked with
---`queue_jobs.array`), string keys for an object.
---@alias queue_jobs.json_value nil|boolean|integer|number|string|table|lightuserdata|queue_jobs.RawJSON

---JSON text that `json.encode` (and `create`'s body) writes as it is: made by `json.raw`.
---`tostring(raw)` gives the text.
---@class queue_jobs.RawJSON: userdata

-- ---- jobs --------------------------------------------------------------------------------

---@alias queue_jobs.JobStatus
---| "pending"   # created, not started yet
---| "running"   # a node works on it
---| "succeeded" # done; `output` holds the result
---| "cancelled" # cancelled before it finished
---| "failed"    # done without success; `output` may say why

---@alias queue_jobs.JobAction "created"|"started"|"succeeded"|"cancelled"|"failed"

---One step of a job's history.
---@class queue_jobs.JobEvent
---@field action queue_jobs.JobAction What happened.
---@field time string When, as an RFC 3339 date-time.

---A job as the API returns it (create, get, list, jobs, wait).
---@class queue_jobs.Job
---@field id string The job's identifier, a UUID.
---@field input queue_jobs.json_value The input it was created with: any JSON value.
---@field metadata? table<string, queue_jobs.json_value> The metadata it was created with (at most 20 properties).
---@field webhook? string The URL notified when the job completes.
---@field status queue_jobs.JobStatus Where the job is.
---@field events queue_jobs.JobEvent[] Its history, oldest first.
---@field output? queue_jobs.json_value The result, once succeeded or failed: any JSON value.
---@field create_time string When it was created, an RFC 3339 date-time.
---@field update_time string When it last changed, an RFC 3339 date-time.

---A page of jobs: what `client:list` returns.
---@class queue_jobs.JobList
---@field items queue_jobs.Job[] The jobs of the page; fewer than `page_size` on the last one.

---A queue as the API returns it (create_queue, get_queue, update_queue, list_queues).
---@class queue_jobs.Queue
---@field id string The queue's identifier, a UUID.
---@field name string The queue's name.
---@field display_name string Its display name (the service gives one when none was set).
---@field description? string Its description, when it has one.
---@field current_queue_length? integer How many jobs wait in it: what SaladCloud's autoscaler acts on.
---@field container_groups table[] The container groups that take its jobs (ContainerGroup objects).
---@field create_time string When it was created, an RFC 3339 date-time.
---@field update_time string When it last changed, an RFC 3339 date-time.

---The project's queues: what `client:list_queues` returns.
---@class queue_jobs.QueueList
---@field items queue_jobs.Queue[] The queues (the API has no pages here).

-- ---- errors ------------------------------------------------------------------------------

---@alias queue_jobs.ErrorKind
---| "invalid_argument" # a bad argument or option (`path` names it); nothing was sent. Never retried.
---| "http"             # the server answered with a status other than 2xx (`status`, and ProblemDetails fields).
---| "network"          # no connection, a dropped connection, a truncated body, a TLS failure, an answer that is not HTTP.
---| "timeout"          # an attempt passed `timeout`, the operation its `deadline`, or `wait` its `timeout` (`job`).
---| "decode"           # a 2xx answer that is not JSON or not the expected shape; or `json.decode` refused the text.
---| "too_large"        # an answer larger than `max_body`, or one that would make too many Lua values.
---| "invalid_signature" # `webhook.verify`: a header missing or malformed, the timestamp out of tolerance, or no signature matching.
---| "task"             # `task:result()`: the task's function raised (`value` is what it raised, `traceback` where), or its engine was closed first.
---| "journal"          # a bulk create's journal cannot be opened, read, written, or is in use by another run; or an item changed since the journal recorded it (`item`).
---| "ambiguous"        # `create_many`: an item that may or may not exist (not resolved by the look-up, or `reconcile = false`).
---| "not_cancelled"    # `cancel_many`: the service accepted a job's cancel (202), and the job was still pending when read again.
---| "stopped"          # `cancel_many`: the run stopped after a job's cancel was sent, before the job was read again.

---What every failure returns as its second value (`nil, err`). `tostring(err)` is
---`err.message`, so `assert(client:create{...})` prints one readable line. Every string of
---it has the API key redacted.
---@class queue_jobs.Error
---@field kind queue_jobs.ErrorKind What went wrong.
---@field message string One line naming the operation: `get: HTTP 404 Not Found: The job does not exist.`
---@field retryable? boolean Whether the rules allowed a retry of the last attempt.
---@field attempts? integer How many attempts were made (0 when none could start before the deadline).
---@field status? integer The HTTP status (kinds `http`, `decode`, `too_large`).
---@field title? string ProblemDetails `title` of the answer (kind `http`).
---@field detail? string ProblemDetails `detail` of the answer (kind `http`).
---@field type? string ProblemDetails `type` of the answer (kind `http`).
---@field instance? string ProblemDetails `instance` of the answer (kind `http`).
---@field errors? table The `errors` member of the answer, as it came (kind `http`).
---@field retry_after? number Seconds the server asked to wait (`Retry-After`).
---@field snippet? string A readable excerpt of a body that is not ProblemDetails (an HTML page's `<title>`, tags stripped).
---@field content_type? string The answer's `Content-Type`.
---@field path? string Which argument or option is bad (`queue_name`, `input.items[3].name`); for `json.encode`, the JSON path of the value (`$.items[3].price`).
---@field job? queue_jobs.Job The last job seen, when `wait` times out (nil when no poll was answered).
---@field jobs? table<string, queue_jobs.Job> The jobs seen final, by id, when `wait_many` ends without all of them.
---@field pending? string[] The ids not seen final (sorted), when `wait_many` ends without all of them.
---@field item? integer The item's index, in an error of `create_many`.
---@field report? queue_jobs.BulkReport What `create_many` had done when its journal failed.
---@field sent? boolean Whether the request had been sent when the transfer failed (kinds `network`, `timeout`).
---@field curl_code? integer libcurl's error code of the failed transfer (kinds `network`, `timeout`).
---@field offset? integer `json.decode`: the byte where the text goes wrong, from 1.
---@field line? integer `json.decode`: its line, from 1.
---@field column? integer `json.decode`: its column, from 1.

-- ---- options and arguments ---------------------------------------------------------------

---The options of `queue_jobs.client{...}` (and of `queue_jobs.create{...}`). Unknown names are
---refused with an `invalid_argument` error.
---@class queue_jobs.ClientOptions
---@field api_key? string The API key, sent as `Salad-Api-Key`; no control characters. Default: env `SALAD_API_KEY`; required.
---@field base_url? string The API's base URL; no credentials, query or fragment. Default: env `SALAD_BASE_URL`, then `https://api.salad.com/api/public`.
---@field organization_name? string The organization of every call that names none. Default: none.
---@field project_name? string The project of every call that names none. Default: none.
---@field timeout? number Seconds per attempt, in (0, 1e6]. Default: 60.
---@field connect_timeout? number Seconds per attempt to connect, in (0, 1e6]. Default: 10.
---@field retries? integer Further attempts where the rules allow them, 0..100. Default: 3.
---@field deadline? number|false Seconds for one operation, pacing, attempts, waits and decoding included, in (0, 1e6]; `false`: none. Default: 120.
---@field backoff_base? number Full-jitter backoff: the first bound, seconds, in (0, 1e6]. Default: 0.5.
---@field backoff_max? number Full-jitter backoff: the largest bound, seconds, in (0, 1e6]. Default: 30.
---@field max_retry_after? number The longest `Retry-After` waited for, seconds, 0..1e6; a longer one ends the operation with the error. Default: 300.
---@field retry_unsafe? boolean `true` also retries creates after 408/5xx, timeouts and dropped connections: jobs may be created twice. Default: false.
---@field rate_limit? number|false Requests per minute (token bucket), in (0, 1e9]; `false`: no pacing. Default: 240.
---@field burst? integer Requests that may go at once before pacing starts, 1..1000000. Default: 1.
---@field max_body? integer The largest response body, decompressed, in bytes, 1..2^40 (larger: `too_large`); it also bounds what decoding makes (`max_body / 16` values). Default: 67108864 (64 MiB).
---@field exact_numbers? boolean Numbers in answers that are not int64 integers come as `queue_jobs.RawJSON` (their text, written back as it is by `json.encode`) instead of floats. Default: false.
---@field ca_file? string A CA bundle for TLS verification. Default: the system's CAs.
---@field proxy? string A proxy URL; with a plain `http://` base URL it needs `allow_http`. Default: curl's proxy environment variables (https only).
---@field allow_http? boolean `true` allows plain `http://` to hosts that are not loopback, and a `proxy` with a plain `http://` base URL. Default: false.
---@field user_agent? string The `User-Agent`. Default: `saladcloud-queue-jobs/VERSION libcurl/VERSION`.
---@field clock? fun(): number A monotonic clock in seconds (for tests). Default: the system's monotonic clock.
---@field sleep? fun(seconds: number) Sleeps (for tests). Default: `nanosleep`.
---@field random? fun(): number A random number in [0, 1), for jitter (for tests). Default: `math.random`.
---@field engine? queue_jobs.Engine Inside a task of this engine, every method yields to it instead of blocking; outside any task it blocks as usual. Default: none.
---@field on_event? fun(ev: queue_jobs.Event) Called for every request, response, retry and pacing wait of the client's calls, blocking or in an engine alike; an error it raises is counted in `client:stats()` and never changes the call's outcome. Default: none.

---The options every method takes besides its own arguments, checked by the client options'
---rules; each replaces the client's setting for this call.
---@class queue_jobs.CallOptions
---@field organization_name? string The organization (default: the client's).
---@field project_name? string The project (default: the client's).
---@field timeout? number Seconds per attempt.
---@field connect_timeout? number Seconds per attempt to connect.
---@field retries? integer Further attempts where the rules allow them.
---@field deadline? number|false Seconds for the whole operation; `false`: none.
---@field retry_unsafe? boolean `true` also retries creates where the job may exist already.

---The arguments of `client:create{...}`.
---@class queue_jobs.CreateArgs: queue_jobs.CallOptions
---@field queue_name string The queue: 2..63 characters of a-z, 0-9 and '-', from a letter to a letter or digit.
---@field input queue_jobs.json_value The job's input, any JSON value (`queue_jobs.null` for null); required.
---@field metadata? table<string, queue_jobs.json_value> A JSON object of at most 20 properties.
---@field webhook? string An absolute http(s) URL of 1..2048 characters, notified when the job completes.

---The arguments of `queue_jobs.create{...}`: those of `client:create` and any client option.
---@class queue_jobs.CreateOptions: queue_jobs.CreateArgs, queue_jobs.ClientOptions

---The arguments of `client:get{...}` and `client:cancel{...}`.
---@class queue_jobs.JobArgs: queue_jobs.CallOptions
---@field queue_name string The queue.
---@field id string The job's id, a UUID.

---The arguments of `client:list{...}`.
---@class queue_jobs.ListArgs: queue_jobs.CallOptions
---@field queue_name string The queue.
---@field page? integer The page, 1..2147483647 (default: the server's, the first).
---@field page_size? integer Jobs per page, 1..100 (default: the server's).

---The arguments of `client:jobs{...}`.
---@class queue_jobs.JobsArgs: queue_jobs.CallOptions
---@field queue_name string The queue.
---@field page? integer The first page to fetch, 1..2147483647. Default: 1.
---@field page_size? integer Jobs per page, 1..100. Default: 100.

---The arguments of `client:webhook_secret{...}` and `client:rotate_webhook_secret{...}`: the call options but `project_name` (the
---key is the organization's), which it refuses.
---@class queue_jobs.WebhookSecretArgs
---@field organization_name? string The organization (default: the client's).
---@field timeout? number Seconds per attempt.
---@field connect_timeout? number Seconds per attempt to connect.
---@field retries? integer Further attempts where the rules allow them.
---@field deadline? number|false Seconds for the whole operation; `false`: none.
---@field retry_unsafe? boolean No effect here: a GET is retried by the GET rules anyway.

---The arguments of `client:list_queues{...}`: the call options alone.
---@class queue_jobs.ListQueuesArgs: queue_jobs.CallOptions

---The arguments of `client:get_queue{...}` and `client:delete_queue{...}`.
---@class queue_jobs.QueueArgs: queue_jobs.CallOptions
---@field queue_name string The queue: 2..63 characters of a-z, 0-9 and '-', from a letter to a letter or digit.

---The arguments of `client:create_queue{...}` and `client:update_queue{...}`. For an update,
---a field not given stays as it is, and `queue_jobs.null` clears it (a JSON merge patch).
---@class queue_jobs.QueueBodyArgs: queue_jobs.CallOptions
---@field queue_name string The queue: 2..63 characters of a-z, 0-9 and '-', from a letter to a letter or digit.
---@field display_name? string|lightuserdata 2..63 characters of A-Z, a-z, 0-9, space, ',', '-' and '.'.
---@field description? string|lightuserdata At most 500 characters on one line (no line feed, carriage return, U+2028 or U+2029).

---The arguments of `client:wait{...}`. Here `timeout` is the whole wait; the other call
---options apply to each poll, whose deadline is also cut to the time the wait has left.
---@class queue_jobs.WaitArgs: queue_jobs.CallOptions
---@field queue_name string The queue.
---@field id string The job's id, a UUID.
---@field timeout? number Seconds the whole wait may take; then `nil, err` of kind `timeout`, with `err.job`. Default: 600.
---@field interval? number Seconds before the second poll; each next interval is 1.5 times longer. Default: 1.
---@field max_interval? number The longest interval between polls, seconds. Default: 15.

---The options of `client:create_many(items, opts)`.
---@class queue_jobs.CreateManyOptions
---@field concurrency? integer Creates in flight at once, 1..1000. Default: 8.
---@field on_result? fun(i: integer, job: queue_jobs.Job?, err: queue_jobs.Error?, found: boolean?) Called once per item with an outcome (not for skipped or not-tried ones); `found` is true for a job found by the look-up; then `results` is not kept.
---@field on_skipped? fun(i: integer, id: string) Called once per item that the journal shows an earlier run created, with that job's id.
---@field progress? boolean|fun(p: queue_jobs.BulkProgress) A function called after each item, or `true` for a line on stderr when it is a terminal.
---@field journal? string A file that records each item sent and created; a re-run with it skips the created items and looks for the ones sent without an answer.
---@field journal_sync? boolean fsync the journal after each record (survives a crash of the machine, not only of the process). Default: false.
---@field reconcile? boolean Tag each job's metadata with the batch item key and look ambiguous creates up by it before sending them again. Default: true.
---@field settle? number Seconds after an ambiguous item's last attempt before the second look-up that may send it again, 0..3600. Default: 10.
---@field stop? fun(): boolean Called before each item is taken and while the look-up waits: true stops the run (`stopped = "stopped"`).
---@field digest? fun(i: integer, item: table): string? The digest the journal keeps of item i (16 hex digits); default: of its input, metadata and webhook, keys sorted.
---@field max_queue_length? integer Backpressure: a create goes only while its queue holds fewer pending jobs than this (read with `get_queue`, plus the creates sent since). Default: none.
---@field queue_poll? number Seconds between two readings of the queue's length at the most (and never more often than a tenth of `rate_limit` allows), in (0, 3600]. Default: 5.

---What a `progress` function gets after each item.
---@class queue_jobs.BulkProgress
---@field done integer Items with an outcome so far.
---@field total? integer The number of items (nil for an iterator).
---@field created integer
---@field found integer
---@field failed integer
---@field skipped integer
---@field ambiguous integer
---@field not_tried integer
---@field seconds number Since the start.
---@field rate? number Items a second.
---@field eta? number Seconds left (nil without a total).

---What `client:create_many` returns.
---@class queue_jobs.BulkReport
---@field created integer Items this call created (a 2xx job).
---@field found integer Items whose answer was ambiguous, found by the look-up.
---@field failed integer Items refused or failed for good (`err.item` is the index).
---@field skipped integer Items the journal holds from an earlier run.
---@field ambiguous integer Items that may or may not exist (not resolved: `reconcile = false`, the look-up failed, or the run stopped first).
---@field not_tried integer Items taken but not sent because the run stopped.
---@field untried integer[] Their indexes.
---@field rate_limited integer 429 answers the call got (each slowed the batch).
---@field stopped? "unreachable"|"stopped" Why the run stopped taking items, when it did.
---@field cause? queue_jobs.Error With `stopped = "unreachable"`: the last connection failure.
---@field requests integer Requests the client made during the call.
---@field seconds number How long the call took.
---@field results? table<integer, queue_jobs.Job|queue_jobs.Error> Each item's job or error, by index (not kept with `on_result`).

---The arguments of `client:wait_many{...}`. Here `timeout` is the whole wait; the other call
---options apply to each request, whose deadline is also cut to the time the wait has left.
---@class queue_jobs.WaitManyArgs: queue_jobs.CallOptions
---@field queue_name string The queue of every job.
---@field ids string[] The jobs' ids (UUIDs, any case); repeated ids count once.
---@field timeout? number Seconds the whole wait may take; then `nil, err` of kind `timeout`, with `err.jobs` and `err.pending`. Default: 3600.
---@field interval? number Seconds between sweeps. Default: 5.
---@field on_job? fun(job: queue_jobs.Job) Called once for each job, when a sweep sees it final.

-- ---- the client --------------------------------------------------------------------------

---What `client:stats()` returns.
---@class queue_jobs.ClientStats
---@field requests integer Requests made.
---@field connects integer Connections opened.
---@field open boolean Whether the client is open.
---@field http_version? "1.0"|"1.1"|"2"|"3" The HTTP version of the last answer; nil before any request, or when the last request got no answer.
---@field hook_errors? integer With an `on_event` hook: how many times it raised (each error was dropped).
---@field hook_error? string The message of the last error `on_event` raised, with the key redacted.

---What the client's `on_event` hook gets (docs/client.md, "Events").
---@class queue_jobs.Event
---@field type "request"|"response"|"retry"|"pace" `request` before each attempt; `response` after it; `retry` before the wait for the next attempt; `pace` before a pacing wait.
---@field op string The operation: `create`, `get`, `list`, `cancel`, `webhook_secret`, `rotate_webhook_secret`, `list_queues`, `get_queue`, `create_queue`, `update_queue`, `delete_queue` (`wait`, `jobs`, `wait_many` and `create_many` make `get`, `list` and `create` requests).
---@field method "GET"|"POST"|"DELETE" The request's method.
---@field url string The request's URL (never holding the key).
---@field attempt? integer The attempt, from 1 (every event of one attempt has the same); nil for create_many's own pace.
---@field status? integer `response`: the answer's status; `retry`: the status that is retried.
---@field error? queue_jobs.ErrorKind `response`: why no answer came (`network`, `timeout`, ...); `retry`: the same.
---@field message? string `response` without an answer: the failure's message, the key redacted.
---@field ms? integer `response`: milliseconds from the attempt's start to its end.
---@field bytes_sent? integer `response`: bytes sent (headers and body), as libcurl counted them.
---@field bytes_received? integer `response`: bytes received (headers and body).
---@field http_version? "1.0"|"1.1"|"2"|"3" `response`: the answer's HTTP version.
---@field wait? number `retry` and `pace`: seconds the call waits now.
---@field reason? string `retry`: the status (as text, `"503"`) or the error kind; `pace`: `"rate_limit"` (the client's bucket) or `"batch"` (create_many's pace after 429s).

---What `queue_jobs.stats()` returns: the default clients of `queue_jobs.create` together.
---@class queue_jobs.DefaultStats
---@field clients integer Default clients open.
---@field requests integer Requests they made.
---@field connects integer Connections they opened.

---A client: one keep-alive connection, its settings and its rate limiter. Close it with
---`client:close()`, a `<close>` variable (Lua 5.4), or let the collector do it.
---@class queue_jobs.Client
---@field base_url string The base URL, normalised (no trailing `/`).
---@field organization_name? string The organization of calls that name none.
---@field project_name? string The project of calls that name none.
local Client = {}

---Creates a job: POST to the queue's jobs.
---@param args queue_jobs.CreateArgs
---@return queue_jobs.Job? job the created job
---@return queue_jobs.Error? err
function Client:create(args) end

---Gets a job.
---@param args queue_jobs.JobArgs
---@return queue_jobs.Job? job
---@return queue_jobs.Error? err
function Client:get(args) end

---Lists one page of a queue's jobs.
---@param args queue_jobs.ListArgs
---@return queue_jobs.JobList? page `{ items = { job, ... } }`
---@return queue_jobs.Error? err
function Client:list(args) end

---Cancels a job (HTTP 202). The service accepts every cancel but cancels only a pending job:
---a job already dispatched runs on, and a finished job stays as it is.
---@param args queue_jobs.JobArgs
---@return true? ok
---@return queue_jobs.Error? err
function Client:cancel(args) end

---Iterates over every job of the queue, fetching pages lazily (one `list` per page). On a
---failure the iterator gives `false, err` once, then stops:
---`for job, err in client:jobs{...} do if not job then ... end end`.
---@param args queue_jobs.JobsArgs
---@return fun(): (queue_jobs.Job|false)?, queue_jobs.Error?
function Client:jobs(args) end

---Polls `get` until the job is succeeded, failed or cancelled (the job is returned: a failed
---job is a result, not an error), or until `timeout` seconds (`nil, err` of kind `timeout`).
---@param args queue_jobs.WaitArgs
---@return queue_jobs.Job? job
---@return queue_jobs.Error? err
function Client:wait(args) end

---Sweeps until every job is succeeded, failed or cancelled, and returns them by id (the ids
---as given). A sweep takes the fewer requests of one `get` per unfinished job or the queue's
---list pages (read until every unfinished job is seen). On timeout, or when a request fails
---for good, `nil, err` with `err.jobs` (the finished) and `err.pending` (the ids left).
---@param args queue_jobs.WaitManyArgs
---@return table<string, queue_jobs.Job>? jobs
---@return queue_jobs.Error? err
function Client:wait_many(args) end

---Creates many jobs, `concurrency` at once, on the client's engine (or a private one; inside
---a task of the client's engine it yields). Each job's metadata carries the batch item key
---`queue_jobs_batch_item` (one of the 20 properties) unless `reconcile = false`.
---@param items table[]|fun(): (table|integer)?, table? An array of `create` arguments, or an iterator returning them (nil at the end), or returning `i, item` (indexes that increase: the journal and `on_result` use them).
---@param opts? queue_jobs.CreateManyOptions
---@return queue_jobs.BulkReport? report
---@return queue_jobs.Error? err kind `invalid_argument` (the options, the items) or `journal`
function Client:create_many(items, opts) end

---The arguments of `client:cancel_many{...}`.
---@class queue_jobs.CancelManyArgs
---@field queue_name string The queue of every job.
---@field ids string[] The jobs' ids (UUIDs, any case); repeated ids count once.
---@field concurrency? integer Jobs worked on at once, 1..256. Default: 8.
---@field on_result? fun(id: string, class: "cancelled"|"not_cancellable"|"already_final"|"failed"|"not_tried", status?: string, err?: queue_jobs.Error) Called once per job with its class, the status last read (nil if none was) and, for `failed`, the error. Without it, `report.results` keeps them.
---@field stop? fun(): boolean Polled between requests: true stops the run (the jobs not taken are `not_tried`).
---@field organization_name? string
---@field project_name? string

---What `client:cancel_many` returns.
---@class queue_jobs.CancelManyReport
---@field total integer The jobs (repeated ids once).
---@field cancelled integer Pending jobs this call cancelled.
---@field not_cancellable integer Running jobs: the service accepts their cancel (202) and they run on.
---@field already_final integer Jobs found succeeded, failed or cancelled (no cancel sent), or that ended meanwhile.
---@field failed integer Jobs whose get or cancel failed (a 404: not in the queue); their errors in `errors`.
---@field not_tried integer Jobs not worked on because the run stopped.
---@field errors queue_jobs.Error[] The failed jobs' errors (`err.id` names the job).
---@field results? table<string, {class: string, status?: string, error?: queue_jobs.Error}> Each job's outcome by id (not kept with `on_result`).
---@field requests integer Requests the call made.
---@field rate_limited integer 429 answers (each slowed the run).
---@field seconds number How long the call took.
---@field stopped? "unreachable"|"stopped" Why the run stopped, when it did.
---@field cause? queue_jobs.Error With `stopped = "unreachable"`: the last connection failure.

---Cancels many jobs, `concurrency` at once, paced as `create_many` (on the client's engine,
---yielding inside one of its tasks, or blocking on a private one). Each job is read first: a
---finished one is `already_final` and no cancel is sent; any other is cancelled and read
---again, since the cancel's 202 says nothing of what happened to it.
---@param args queue_jobs.CancelManyArgs
---@return queue_jobs.CancelManyReport? report
---@return queue_jobs.Error? err kind `invalid_argument` (nothing was sent)
function Client:cancel_many(args) end

---The organization's webhook secret key, as `"whsec_" .. secret_key`: the form Standard
---Webhooks libraries take to verify the webhooks SaladCloud signs with it. An answer without
---a usable `secret_key` (base64 of 24 to 128 bytes) is an error of kind `decode` that never
---shows the answer. `client:webhook_secret()` is `client:webhook_secret{}`.
---@param args? queue_jobs.WebhookSecretArgs
---@return string? secret `"whsec_"` and the key's base64
---@return queue_jobs.Error? err
function Client:webhook_secret(args) end

---Lists the project's queues. `client:list_queues()` is `client:list_queues{}`.
---@param args? queue_jobs.ListQueuesArgs
---@return queue_jobs.QueueList? queues `{ items = { queue, ... } }`
---@return queue_jobs.Error? err
function Client:list_queues(args) end

---Gets a queue, with its `current_queue_length`.
---@param args queue_jobs.QueueArgs
---@return queue_jobs.Queue? queue
---@return queue_jobs.Error? err
function Client:get_queue(args) end

---Creates a queue (POST; `queue_name` is its name). Retried as `create` is: a 429, or a
---failure before anything was sent, unless `retry_unsafe`. A queue of that name already
---there is an `http` error (the emulator answers 409).
---@param args queue_jobs.QueueBodyArgs
---@return queue_jobs.Queue? queue
---@return queue_jobs.Error? err
function Client:create_queue(args) end

---Updates a queue's display name or description: a JSON merge patch (PATCH,
---`application/merge-patch+json`); `queue_jobs.null` clears a field.
---@param args queue_jobs.QueueBodyArgs
---@return queue_jobs.Queue? queue
---@return queue_jobs.Error? err
function Client:update_queue(args) end

---Deletes a queue (HTTP 202).
---@param args queue_jobs.QueueArgs
---@return true? ok
---@return queue_jobs.Error? err
function Client:delete_queue(args) end

---Rotates the organization's webhook secret key (a POST, no body) and returns the new one
---as `webhook_secret` does, with the same secrecy. Retried as a GET: a retry after a lost
---answer rotates once more, and the key returned is the current one.
---`client:rotate_webhook_secret()` is `client:rotate_webhook_secret{}`.
---@param args? queue_jobs.WebhookSecretArgs
---@return string? secret `"whsec_"` and the new key's base64
---@return queue_jobs.Error? err
function Client:rotate_webhook_secret(args) end

---Counters of the connection.
---@return queue_jobs.ClientStats
function Client:stats() end

---Closes the connection; safe to call twice. Any other method on a closed client raises.
function Client:close() end

-- ---- the JSON codec ----------------------------------------------------------------------

---The options of `json.encode`.
---@class queue_jobs.EncodeOptions
---@field indent? integer Spaces per level, 0..16; 0 (the default) is compact.
---@field sort_keys? boolean Writes object keys in byte order. Default: false (the table's order).
---@field max_depth? integer The deepest nesting, 1..1000. Default: 1000.

---The options of `json.decode`.
---@class queue_jobs.DecodeOptions
---@field max_depth? integer The deepest nesting, 1..1000. Default: 1000.
---@field max_values? integer The most arrays, objects and strings (keys included) one decode may make; past it, kind `too_large`. 0 (the default): no bound.
---@field exact_numbers? boolean Numbers that are not int64 integers come as `queue_jobs.RawJSON` (their text) instead of floats. Default: false.

---The exact JSON codec.
---@class queue_jobs.JSON
local json = {}

---Encodes a value as JSON text: integers digit for digit, floats as the shortest text that
---reads back the same, strings as valid UTF-8. Misuse (bad options) raises.
---@param value queue_jobs.json_value
---@param opts? queue_jobs.EncodeOptions
---@return string? text
---@return queue_jobs.Error? err kind `invalid_argument`, with `path`
function json.encode(value, opts) end

---Decodes JSON text (RFC 8259, strictly). JSON null gives `queue_jobs.null`; arrays carry the
---`queue_jobs.array` metatable. Misuse (not a string, bad options) raises.
---@param text string
---@param opts? queue_jobs.DecodeOptions
---@return queue_jobs.json_value value
---@return queue_jobs.Error? err kind `decode` (or `too_large` past `max_values`), with `offset`, `line`, `column`
function json.decode(text, opts) end

---JSON text to be written as it is, byte for byte, by `json.encode` and in `create`'s body
---(an integer beyond int64, `2.50` as written). The text is checked as `json.decode` checks
---it; the whitespace around it is left out. Misuse (not a string) raises.
---@param text string
---@return queue_jobs.RawJSON? raw
---@return queue_jobs.Error? err kind `decode`, with `offset`, `line`, `column`
function json.raw(text) end

-- ---- webhook signatures ----------------------------------------------------------------

---The options of `webhook.verify`.
---@class queue_jobs.VerifyOptions
---@field tolerance? number Seconds the delivery's timestamp may be from `now`, either way, 0..1e9. Default: 300.
---@field now? number The Unix time to check against, in seconds. Default: the system clock.
---@field decode? boolean false: return the verified body as it came (a string), undecoded. Default: true.

---Webhook signatures, the Standard Webhooks way (HMAC-SHA256 over `id.timestamp.body`).
---@class queue_jobs.Webhook
---@field TOLERANCE number The default tolerance, 300 seconds.
---@field MAX_SECRETS integer The most secrets `verify` takes at once, 8.
local webhook = {}

---Verifies a delivery and returns its payload, decoded by the exact codec. No error holds
---any part of the secret, and with several secrets none says which was tried. Misuse
---(arguments of the wrong types) raises.
---@param secret string|string[] `whsec_<base64>` (as `client:webhook_secret` gives it) or the base64 alone; or an array of 1..8 of them, any one of which may match (during a rotation: the old secret and the new).
---@param headers table<string, string|string[]> The request's headers, names in any case.
---@param body string The raw body, byte for byte.
---@param opts? queue_jobs.VerifyOptions
---@return queue_jobs.json_value? payload the body itself (a string) with `decode = false`
---@return queue_jobs.Error? err kind `invalid_signature`, `invalid_argument` (the secret, `secret[i]` in a list, the options) or `decode` (signed, but not JSON; never with `decode = false`)
function webhook.verify(secret, headers, body, opts) end

---Signs a delivery: the value of its `webhook-signature` header, `v1,<base64>`.
---@param secret string `whsec_<base64>` or the base64 alone.
---@param id string The `webhook-id`, 1..256 bytes.
---@param timestamp integer|string Unix seconds, or their digits.
---@param body string The body, byte for byte.
---@return string? signature
---@return queue_jobs.Error? err kind `invalid_argument`, with `path`
function webhook.sign(secret, id, timestamp, body) end

---A cache several receivers share, for `webhook.replay_guard`: it keeps each id it is given
---for `ttl` seconds, then forgets it.
---@class queue_jobs.ReplayStore
---@field get fun(id: string): any Truthy when the id is kept (seen within its ttl). An error is raised through `first`.
---@field set fun(id: string, ttl: number): boolean? Keeps the id for ttl seconds; returns false when it was kept already (an atomic set-if-absent, as Redis's `SET id 1 NX EX ttl`), anything else when it was not.

---The options of `webhook.replay_guard`.
---@class queue_jobs.ReplayGuardOptions
---@field capacity? integer Ids kept in memory at most, 1..1e8 (the oldest go first). Default: 10000.
---@field ttl? number Seconds an id is remembered from its first sighting, (0, 1e9]. Default: 600.
---@field store? queue_jobs.ReplayStore A shared cache that holds the ids instead of the guard's memory.
---@field clock? fun(): number Seconds, monotonic. Default: the module's monotonic clock.

---The webhook-ids a receiver has seen within a ttl.
---@class queue_jobs.ReplayGuard
---@field evicted integer Ids pushed out of memory before their ttl, the capacity being full.
local ReplayGuard = {}

---True the first time the id is seen within the ttl (and records it), false after. A store's error is raised.
---@param webhook_id string The delivery's `webhook-id`.
---@return boolean
function ReplayGuard:first(webhook_id) end

---Ids held in memory now (0 with a store).
---@return integer
function ReplayGuard:count() end

---A guard that drops replayed deliveries: `guard:first(headers["webhook-id"])`.
---@param opts? queue_jobs.ReplayGuardOptions
---@return queue_jobs.ReplayGuard? guard
---@return queue_jobs.Error? err kind `invalid_argument`, with `path` naming the option
function webhook.replay_guard(opts) end

-- ---- the engine --------------------------------------------------------------------------

---The options of `queue_jobs.engine`.
---@class queue_jobs.EngineOptions
---@field max_connections? integer Connections kept at most, per host and in all, 1..100000 (HTTP/2 multiplexes many requests on one). Default: 8.

---What `engine:stats()` returns.
---@class queue_jobs.EngineStats
---@field tasks integer Tasks not done yet.
---@field in_flight integer Requests curl has now.
---@field requests integer Requests the engine finished.
---@field connects integer Connections its requests opened.

---Runs tasks (functions in coroutines) whose client calls yield to it, many requests in
---flight at once, and lets a host's event loop drive it: cqueues' pollable convention
---(`pollfd`, `events`, `timeout`), so `cqueues.poll(engine)` works as is.
---@class queue_jobs.Engine
---@field max_connections integer As made.
---@field backend "epoll"|"poll" How it waits, chosen at build time: epoll on Linux, poll(2) elsewhere (no `pollfd()` there).
local Engine = {}

---Runs `fn(...)` in a coroutine, from the next step on.
---@param fn function
---@param ... any its arguments
---@return queue_jobs.Task
function Engine:spawn(fn, ...) end

---The descriptor to poll for reading: it is readable when `step` has work. On the poll backend there is none: nil and a message (step at `timeout()` instead).
---@return integer? fd
---@return string? message
function Engine:pollfd() end

---The events to poll `pollfd()` for.
---@return "r"
function Engine:events() end

---Seconds to the next timer (curl's, a task's backoff, pacing, Retry-After or `wait` poll), 0 when a task is ready; nil when there is none. On the poll backend, at most 0.01 while a task waits for its request.
---@return number?
function Engine:timeout() end

---Does what is ready; waits at most `seconds` (default 0: never blocks) for something to be.
---@param seconds? number
---@return true
function Engine:step(seconds) end

---Steps until every task is done (blocking; for scripts).
---@return true
function Engine:loop() end

---Counters of the engine.
---@return queue_jobs.EngineStats
function Engine:stats() end

---Aborts the requests in flight and ends every task (their results: `nil, err` of kind `task`). Safe to call twice.
function Engine:close() end

---A function running inside an engine.
---@class queue_jobs.Task
local Task = {}

---Whether the task has ended.
---@return boolean
function Task:done() end

---What the task's function returned; `nil, err` (kind `task`) when it raised or its engine was closed first. Raises when the task is not done.
---@return any ...
function Task:result() end

-- ---- the module --------------------------------------------------------------------------

---SaladCloud Job Queue client: `local queue_jobs = require "queue_jobs"`.
---@class queue_jobs
---@field _VERSION string The module's version, `MAJOR.MINOR.PATCH`.
---@field json queue_jobs.JSON The exact JSON codec.
---@field webhook queue_jobs.Webhook Webhook signatures: verify and sign; the replay guard.
---@field null lightuserdata JSON null: the same value as `cjson.null`.
---@field empty_array table A read-only empty table that encodes as `[]`.
local queue_jobs = {}

---Makes a client. Raises only when `opts` is neither a table nor nil.
---@param opts? queue_jobs.ClientOptions
---@return queue_jobs.Client? client
---@return queue_jobs.Error? err kind `invalid_argument`
function queue_jobs.client(opts) end

---Makes an engine: many requests in flight, driven by a host's event loop or by `engine:loop()`.
---Raises on a bad option.
---@param opts? queue_jobs.EngineOptions
---@return queue_jobs.Engine
function queue_jobs.engine(opts) end

---Creates a job in one call, through a default client kept per base URL, key and options (at
---most 8; the one used longest ago is closed to make room).
---@param args queue_jobs.CreateOptions
---@return queue_jobs.Job? job
---@return queue_jobs.Error? err
function queue_jobs.create(args) end

---Counters of the default clients of `queue_jobs.create`.
---@return queue_jobs.DefaultStats
function queue_jobs.stats() end

---Closes the default clients of `queue_jobs.create`.
function queue_jobs.close() end

---Marks `t` as a JSON array (so an empty `t` encodes as `[]`) and returns it.
---@generic T: table
---@param t T
---@return T
function queue_jobs.array(t) end

return queue_jobs
