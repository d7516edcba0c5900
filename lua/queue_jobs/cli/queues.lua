--- queue_jobs.cli.queues: `salad-jobs queues`, the project's queues (docs/cli.md): list, get,
-- create, update, delete, each through the client's queue operations. A queue is printed as
-- one JSON line, its members in key order.
local core = require "queue_jobs.core"
local compat = require "queue_jobs.compat"

local fmt = string.format
local encode, null = core.json.encode, core.null

local Q = { commands = {} }

local SORTED = { sort_keys = true }

local function print_queue(cx, queue)
  cx:write(assert(encode(queue, SORTED)))
end

-- The exit status of a failed call: 2 for an argument refused before sending, else 1.
local function failed(cx, err, name)
  cx:say(name and fmt("%s: %s", name, err.message) or err.message)
  return err.kind == "invalid_argument" and 2 or 1
end

local function list(cx, client, _, names)
  if #names > 0 then return cx:usage("queues list takes no queue names") end
  local res, err = client:list_queues()
  if not res then return failed(cx, err) end
  for _, q in ipairs(res.items) do print_queue(cx, q) end
  return 0
end

-- get and delete: one request per name given; the worst status of them.
local function each_name(op)
  return function(cx, client, _, names)
    if #names == 0 then return cx:usage("queues " .. op .. " needs queue names") end
    local status = 0
    for _, name in ipairs(names) do
      local v, err = client[op .. "_queue"](client, { queue_name = name })
      if v == nil then
        local st = failed(cx, err, err.kind ~= "invalid_argument" and name or nil)
        if st > status then status = st end
      elseif op == "get" then
        print_queue(cx, v)
      end
    end
    return status
  end
end

-- create and update: one queue, its fields from the options (update: --clear-* sends null).
local function with_body(op)
  return function(cx, client, o, names)
    if #names ~= 1 then return cx:usage(fmt("queues %s needs one queue name", op)) end
    local a = { queue_name = names[1], display_name = o.display_name, description = o.description }
    for _, f in ipairs { "display_name", "description" } do
      if o["clear_" .. f] then
        if a[f] ~= nil then
          return cx:usage(fmt("--%s and --clear-%s together", f:gsub("_", "-"), f:gsub("_", "-")))
        end
        a[f] = null
      end
    end
    local v, err = client[op .. "_queue"](client, a)
    if not v then return failed(cx, err) end
    print_queue(cx, v)
    return 0
  end
end

local ACTIONS = { list = list, get = each_name("get"), delete = each_name("delete"),
  create = with_body("create"), update = with_body("update") }

local function run(cx, o, pos)
  local action = pos[1] or "list"
  local act = ACTIONS[action]
  if not act then
    return cx:usage(fmt("queues: %s is not an action (list, get, create, update, delete)",
      cx.shown(action, "the action")))
  end
  if action ~= "update" and (o.clear_display_name or o.clear_description) then
    return cx:usage("--clear-display-name and --clear-description go with queues update")
  end
  if (action ~= "create" and action ~= "update") and (o.display_name or o.description) then
    return cx:usage("--display-name and --description go with queues create or update")
  end
  local names = { compat.unpack(pos, 2) }
  local client, cst = cx:client(nil, true, true)
  if not client then return cst end
  local ok, status = pcall(act, cx, client, o, names)
  client:close()
  if not ok then error(status, 0) end
  return status
end

Q.commands.queues = {
  options = {
    ["display-name"] = { takes = "string", arg = "TEXT",
      help = "create, update: the display name (2..63 of A-Z a-z 0-9 space , - .)" },
    description = { takes = "string", arg = "TEXT",
      help = "create, update: the description (at most 500 characters, one line)" },
    ["clear-display-name"] = { help = "update: clear the display name" },
    ["clear-description"] = { help = "update: clear the description" },
  },
  run = run,
  usage = {
    "usage: salad-jobs queues [list]",
    "       salad-jobs queues get NAME...",
    "       salad-jobs queues create NAME [--display-name TEXT] [--description TEXT]",
    "       salad-jobs queues update NAME [--display-name TEXT | --clear-display-name]",
    "                                     [--description TEXT | --clear-description]",
    "       salad-jobs queues delete NAME...",
    "",
    "The project's queues. list, get, create and update print each queue as a JSON line",
    "(current_queue_length: its pending jobs); delete prints nothing. Exit status: 0 done,",
    "1 some request failed (a queue not found), 2 bad usage or a name refused.",
  },
}

return Q
