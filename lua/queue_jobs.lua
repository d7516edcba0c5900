--- queue_jobs: SaladCloud Job Queue client for Lua 5.3 and 5.4, the public module.
-- The C core (queue_jobs.core) does the exact work (JSON codec, HTTP over libcurl); the
-- modules under queue_jobs/ hold the client (client), its options (options), the checks of
-- arguments (validate), errors (errors), the attempt loop (attempt), the rules of retries and
-- pacing (policy), the default clients of queue_jobs.create (default_clients), webhook
-- signatures (webhook) and the engine that runs calls inside an event loop (engine). This
-- file only gathers what users call.
local core = require "queue_jobs.core"
local client = require "queue_jobs.client"
local engine = require "queue_jobs.engine"
local default_clients = require "queue_jobs.default_clients"
local webhook = require "queue_jobs.webhook"

local type, error = type, error

local M = {
  _VERSION = core._VERSION,
  --- The exact JSON codec: json.encode(value [, opts]), json.decode(text [, opts]).
  json = core.json,
  --- JSON null; the same value as cjson.null.
  null = core.null,
  --- array(t): marks t as a JSON array so that an empty t encodes as [].
  array = core.array,
  --- A read-only empty table that encodes as [].
  empty_array = core.empty_array,
  --- Webhook signatures: webhook.verify(secret, headers, body [, opts]), webhook.sign(...).
  webhook = webhook,
}

--- queue_jobs.client{...} -> client | nil, err. See queue_jobs.options for the options.
function M.client(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error("bad argument #1 to 'client' (table expected, got " .. type(opts) .. ")", 2)
  end
  return client.new("client", opts)
end

--- queue_jobs.engine{max_connections = 8} -> engine: runs tasks whose client calls yield
-- instead of blocking, many requests in flight at once (docs/engine.md).
function M.engine(opts)
  return engine.new(opts)
end

--- queue_jobs.create{organization_name, project_name, queue_name, input, metadata?, webhook?,
--- api_key?, base_url?, ...client options} -> job | nil, err
-- Reuses one client (and its connection and rate limiter) per base URL, key and options.
M.create = default_clients.create

--- queue_jobs.stats() -> {clients = n, requests = n, connects = n} of the default clients.
M.stats = default_clients.stats

--- queue_jobs.close(): closes the default clients that queue_jobs.create opened.
M.close = default_clients.close

return M
