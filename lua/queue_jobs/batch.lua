--- queue_jobs.batch: how a bulk create finds out whether a create it cannot be sure of (sent,
-- then a timeout, a dropped connection or a 5xx; or sent by a run that stopped) made a job.
-- Every job of a batch carries, in its metadata, the batch item key:
--
--   metadata.queue_jobs_batch_item = "<batch id>:<item index>"
--
-- The key is one of the 20 properties the API allows, so an item whose metadata has 20
-- already is refused before anything is sent. find() lists the queue's jobs and picks out
-- those keys: found means created; not found means not visible in the list yet (the bulk
-- create decides when to believe it: queue_jobs.bulk).
local errors = require "queue_jobs.errors"

local type, pairs = type, pairs
local fmt = string.format

local Batch = {}

--- The metadata property that carries the batch item key.
Batch.KEY = "queue_jobs_batch_item"

--- Jobs a list request of the look-up asks for (the API's largest page).
Batch.PAGE_SIZE = 100

--- key(batch, i) -> "<batch>:<i>"
function Batch.key(batch, i)
  return batch .. ":" .. fmt("%d", i)
end

--- tag(op, metadata, batch, i) -> metadata with the batch item key (a new table; the item's
-- own is left as it is) | nil, err (invalid_argument, path "metadata"): the metadata already
-- has 20 properties, or the key itself, or is not a table with string keys.
function Batch.tag(op, metadata, batch, i)
  local out, n = {}, 0
  if metadata ~= nil then
    if type(metadata) ~= "table" then
      return nil, errors.invalid(op, "metadata", "must be a JSON object (a table with string keys)")
    end
    for k, v in pairs(metadata) do
      if type(k) ~= "string" then
        return nil, errors.invalid(op, "metadata", "must be a JSON object (a table with string keys)")
      end
      if k == Batch.KEY then
        return nil, errors.invalid(op, "metadata." .. Batch.KEY, "is the batch item key of a bulk " ..
          "create: it is set by create_many (or pass reconcile = false)")
      end
      out[k], n = v, n + 1
    end
  end
  if n >= 20 then
    return nil, errors.invalid(op, "metadata", fmt("has %d properties: a bulk create adds its " ..
      "batch item key (%s), and the API allows 20 (or pass reconcile = false)", n, Batch.KEY))
  end
  out[Batch.KEY] = Batch.key(batch, i)
  return out
end

--- find(client, args, wanted) -> {[key] = job}, pages | nil, err: one scan of the jobs of
-- args.queue_name (args: its queue_name, organization_name, project_name and call options)
-- that picks out those whose batch item key is a key of wanted (a set). It reads page after
-- page until every key is found or a page is empty: never stopping at a short page, since a
-- service may serve fewer jobs than page_size on any page, and a job listed late may land
-- on any of them. pages: the list requests it made. (A job found whose id is not a job id is
-- returned as it is: it exists, but its id is not to be recorded.) stop, when given, is
-- asked before each page: true ends the scan with nil, err.
function Batch.find(client, args, wanted, stop)
  local left = 0
  for _ in pairs(wanted) do left = left + 1 end
  local found = {}
  if left == 0 then return found, 0 end
  local list = {}
  for k, v in pairs(args) do list[k] = v end
  list.page_size = Batch.PAGE_SIZE
  local page, prev_first, prev_last, prev_n = 0, nil, nil, nil
  while true do
    page = page + 1
    list.page = page
    if stop and stop() then
      return nil, { stopped = true, message = "the look-up stopped (the run was told to stop)" }
    end
    local res, err = client:list(list)
    if not res then return nil, err end
    local items = res.items
    if #items == 0 then return found, page end
    -- a server that ignores page serves the same page again: the scan would never end
    local first, last = items[1].id, items[#items].id
    if page > 1 and first == prev_first and last == prev_last and #items == prev_n then
      return nil, { message = fmt("list page %d repeats page %d (the server ignores page)",
        page, page - 1) }
    end
    prev_first, prev_last, prev_n = first, last, #items
    for n = 1, #items do
      local job = items[n]
      local m = job.metadata
      local key = type(m) == "table" and m[Batch.KEY]
      if type(key) == "string" and wanted[key] and not found[key] then
        found[key], left = job, left - 1
        if left == 0 then return found, page end
      end
    end
  end
end

return Batch
