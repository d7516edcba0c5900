--- queue_jobs: SaladCloud Job Queue client for Lua 5.4.
-- The C core (queue_jobs.core) does the exact work (JSON codec, HTTP); this wrapper holds
-- the public API, defaults and validation.
local core = require "queue_jobs.core"

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
}

return M
