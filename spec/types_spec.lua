-- The LuaLS definition file, types/queue_jobs.lua, against the module it describes, so that
-- the two cannot drift: its ---@class, ---@field, ---@alias and `function` lines are read as
-- text and compared with what `require "queue_jobs"` really has, both ways where the module
-- can be asked (functions, methods, client options, call options, create's arguments, error
-- kinds) and one way where it can only be probed (the other methods' arguments, the JSON
-- options). Also how it is installed: make install-types and every rockspec.
local compat = require "queue_jobs.compat"
local helpers = require "support.helpers"

local root = os.getenv("QJ_ROOT") or "."
local q = helpers.shell_quote
local TYPES = "types/queue_jobs.lua"

--- The definition file read as text: classes[name] = {name =, parents = {...}, fields =
-- {name = description}}, aliases[name] = {"value", ...} (the ---| lines of string
-- values), functions[table] = {name = true} (`function t.name(` and `function t:name(`),
-- locals[local name] = class name (a ---@class right above `local x = {}`), and the type
-- names that ---@param, ---@return, ---@field and ---@alias lines use.
local function parse(text)
  local d = { classes = {}, aliases = {}, functions = {}, locals = {}, used = {} }
  local class, alias
  local function uses(s) -- (the code quoted in descriptions, `queue_jobs.null`, left out)
    for name in s:gsub("`[^`]*`", ""):gmatch("queue_jobs%.[%w_]+") do d.used[name] = true end
  end
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do
    local name, parents = line:match("^%-%-%-@class%s+([%w_.]+)%s*:?%s*(.*)$")
    if name then
      class = { name = name, parents = {}, fields = {} }
      for p in parents:gmatch("[%w_.]+") do class.parents[#class.parents + 1] = p end
      uses(parents)
      d.classes[name] = class
      alias = nil
    elseif line:match("^%-%-%-@field") then
      local field, rest = line:match("^%-%-%-@field%s+([%w_]+)%??%s+(.*)$")
      assert(field and class, TYPES .. ": a ---@field outside a ---@class: " .. line)
      class.fields[field] = rest
      uses(rest)
    elseif line:match("^%-%-%-@alias") then
      local aname, rest = line:match("^%-%-%-@alias%s+([%w_.]+)%s*(.*)$")
      alias = {}
      d.aliases[aname] = alias
      for v in rest:gmatch('"([^"]*)"') do alias[#alias + 1] = v end
      uses(rest)
      class = nil
    elseif line:match("^%-%-%-|") then
      local v = line:match('^%-%-%-|%s*"([^"]*)"')
      if alias and v then alias[#alias + 1] = v end
    elseif line:match("^%-%-%-") then -- prose or another annotation: the block goes on
      if line:match("^%-%-%-@param") or line:match("^%-%-%-@return") then uses(line) end
    else
      local loc = line:match("^local%s+([%w_]+)%s*=%s*{%s*}")
      if loc and class then d.locals[loc] = class.name end
      local t, f = line:match("^function%s+([%w_]+)[.:]([%w_]+)%s*%(")
      if t then
        d.functions[t] = d.functions[t] or {}
        d.functions[t][f] = true
      end
      class, alias = nil, nil
    end
  end
  return d
end

--- Asserts that sets a (named a_name) and b (b_name) hold the same keys, naming the keys
-- only one of them holds.
local function assert_same_set(a, a_name, b, b_name)
  local only_a, only_b = {}, {}
  for k in pairs(a) do if not b[k] then only_a[#only_a + 1] = k end end
  for k in pairs(b) do if not a[k] then only_b[#only_b + 1] = k end end
  table.sort(only_a)
  table.sort(only_b)
  assert(#only_a == 0 and #only_b == 0, ("only in %s: %s; only in %s: %s"):format(a_name,
    table.concat(only_a, " "), b_name, table.concat(only_b, " ")))
end

--- The own fields of a class of the file, as a set (its parents' fields left out).
local function fields(d, name)
  local c = assert(d.classes[name], TYPES .. " has no ---@class " .. name)
  local set = {}
  for k in pairs(c.fields) do set[k] = true end
  return set
end

--- The local table of the file that a class is declared on (`local Client = {}`).
local function local_of(d, class)
  for loc, c in pairs(d.locals) do if c == class then return loc end end
  error(TYPES .. " declares no local table for ---@class " .. class)
end

describe("the LuaLS definition file " .. TYPES, function()
  local qj = require "queue_jobs"
  local text = assert(helpers.read_file(root .. "/" .. TYPES))
  local d = parse(text)

  it("is a Lua chunk that LuaLS takes as the definitions of the module queue_jobs", function()
    assert(compat.load(text, "=" .. TYPES, "t", {}))
    assert.matches("^%-%-%-@meta queue_jobs\n", text)
    assert.matches("\nreturn queue_jobs\n$", text)
    assert.equal("queue_jobs", d.locals.queue_jobs)
  end)

  it("names every type it uses, and uses every type it names", function()
    local named = {}
    for name in pairs(d.classes) do named[name] = true end
    for name in pairs(d.aliases) do named[name] = true end
    named.queue_jobs = nil -- the module's class: returned, not named in a type
    d.used.queue_jobs = nil
    assert_same_set(d.used, "the types " .. TYPES .. " uses", named, "the ones it declares")
  end)

  it("has every public function and field of the module, and nothing the module lacks", function()
    local fns, others = {}, {}
    for k, v in pairs(qj) do
      if type(v) == "function" then fns[k] = true else others[k] = true end
    end
    assert_same_set(fns, "queue_jobs (functions)", d.functions.queue_jobs or {},
      TYPES .. " (function queue_jobs.*)")
    assert_same_set(others, "queue_jobs (other fields)", fields(d, "queue_jobs"),
      TYPES .. " (---@field of queue_jobs)")
    assert.is_string(qj._VERSION)
  end)

  for _, part in ipairs { { "json", "queue_jobs.JSON" }, { "webhook", "queue_jobs.Webhook" } } do
    local name, class = part[1], part[2]
    it("has every function of queue_jobs." .. name .. ", and nothing it lacks", function()
      local fns = {}
      for k, v in pairs(qj[name]) do if type(v) == "function" then fns[k] = true end end
      assert_same_set(fns, "queue_jobs." .. name, d.functions[local_of(d, class)] or {},
        TYPES .. " (function " .. name .. ".*)")
    end)
  end

  it("has every field of queue_jobs.webhook that is not a function, and nothing it lacks", function()
    local others = {}
    for k, v in pairs(qj.webhook) do if type(v) ~= "function" then others[k] = true end end
    assert_same_set(others, "queue_jobs.webhook (other fields)", fields(d, "queue_jobs.Webhook"),
      TYPES .. " (---@field of queue_jobs.Webhook)")
  end)

  it("has every method and field of a replay guard, the options it takes and the store's contract", function()
    local guard = assert(qj.webhook.replay_guard())
    local methods = {}
    for k, v in pairs(getmetatable(guard)) do
      if type(v) == "function" and not k:find("^__") then methods[k] = true end
    end
    assert.is_truthy(methods.first)
    assert_same_set(methods, "a replay guard's methods",
      d.functions[local_of(d, "queue_jobs.ReplayGuard")] or {}, TYPES .. " (function ReplayGuard:*)")
    local public = {}
    for k in pairs(guard) do if not k:find("^_") then public[k] = true end end
    assert_same_set(public, "a replay guard's fields", fields(d, "queue_jobs.ReplayGuard"),
      TYPES .. " (---@field of queue_jobs.ReplayGuard)")
    -- every option the types name is taken, and an unknown one is refused
    for name in pairs(fields(d, "queue_jobs.ReplayGuardOptions")) do
      local _, err = qj.webhook.replay_guard { [name] = false }
      assert.is_not_nil(err, name)
      assert.equal(name, err.path)
      assert.is_nil(err.message:find("is not an option", 1, true), name .. " is refused as unknown")
    end
    local _, err = qj.webhook.replay_guard { no_such_option = 1 }
    assert.equal("no_such_option", err.path)
    assert.same({ get = true, set = true }, fields(d, "queue_jobs.ReplayStore"))
  end)

  describe("the client", function()
    local c
    setup(function()
      -- nothing is ever sent: a port nobody listens on, and every call below lacks a name
      c = assert(qj.client { api_key = "types-spec-key", base_url = "http://127.0.0.1:9",
        project_name = "dev-env", retries = 0, rate_limit = false })
    end)
    teardown(function() c:close() end)

    it("has every method of a client, and nothing a client lacks", function()
      local methods = {}
      for k, v in pairs(getmetatable(c)) do
        if type(v) == "function" and not k:find("^__") then methods[k] = true end
      end
      assert.is_truthy(methods.create)
      assert_same_set(methods, "a client's methods", d.functions[local_of(d, "queue_jobs.Client")] or {},
        TYPES .. " (function Client:*)")
    end)

    it("has the fields a client has", function()
      local probe = assert(qj.client { api_key = "types-spec-key", base_url = "http://127.0.0.1:9",
        organization_name = "acme-corp", project_name = "dev-env" })
      for name in pairs(fields(d, "queue_jobs.Client")) do
        assert.is_not_nil(rawget(probe, name), "a client has no field " .. name)
      end
      probe:close()
    end)

    -- op{NAME = false} -> whether it failed with an error (returned, not raised), and whether
    -- that error is "NAME is not an argument of OP". An argument the method takes gives
    -- another error (no organization is named), before anything is sent.
    local function refuses(op, name)
      local ok, v, err = pcall(c[op], c, { [name] = false })
      if ok and op == "jobs" then v, err = v() end -- the iterator gives false, err
      local failed = ok and not v and err ~= nil
      return failed, failed and tostring(err):find(name .. " is not an argument of " .. op, 1, true) ~= nil
    end

    it("knows every argument name of each method, as the methods do", function()
      local _, refused = refuses("get", "not_an_argument")
      assert.is_truthy(refused, "the probe does not see a refused name")
      local classes = { create = "queue_jobs.CreateArgs", get = "queue_jobs.JobArgs",
        cancel = "queue_jobs.JobArgs", list = "queue_jobs.ListArgs", jobs = "queue_jobs.JobsArgs",
        wait = "queue_jobs.WaitArgs", webhook_secret = "queue_jobs.WebhookSecretArgs",
        list_queues = "queue_jobs.ListQueuesArgs", get_queue = "queue_jobs.QueueArgs",
        delete_queue = "queue_jobs.QueueArgs", create_queue = "queue_jobs.QueueBodyArgs",
        update_queue = "queue_jobs.QueueBodyArgs",
        rotate_webhook_secret = "queue_jobs.WebhookSecretArgs" }
      local call_options = fields(d, "queue_jobs.CallOptions")
      for op, class in pairs(classes) do
        local names = fields(d, class)
        if class == "queue_jobs.WebhookSecretArgs" then -- the call options but project_name, each its own field
          assert.same({}, d.classes[class].parents, class)
        else
          assert.same({ "queue_jobs.CallOptions" }, d.classes[class].parents, class)
          for k in pairs(call_options) do names[k] = true end
        end
        for name in pairs(names) do
          local failed, is_refused = refuses(op, name)
          assert(failed, op .. "{" .. name .. " = false} did not fail before sending")
          assert(not is_refused, TYPES .. " gives " .. op .. " an argument " .. name .. " that it refuses")
        end
      end
    end)

    it("has the call options, create's and webhook_secret's arguments that the client checks, and no others", function()
      local client = require "queue_jobs.client"
      assert_same_set(client.CALL_OPTIONS, "queue_jobs.client.CALL_OPTIONS",
        fields(d, "queue_jobs.CallOptions"), TYPES .. " (queue_jobs.CallOptions)")
      assert_same_set(client.CREATE_ARGS, "queue_jobs.client.CREATE_ARGS",
        fields(d, "queue_jobs.CreateArgs"), TYPES .. " (queue_jobs.CreateArgs)")
      assert_same_set(client.WEBHOOK_SECRET_ARGS, "queue_jobs.client.WEBHOOK_SECRET_ARGS",
        fields(d, "queue_jobs.WebhookSecretArgs"), TYPES .. " (queue_jobs.WebhookSecretArgs)")
      for _, op in ipairs { "webhook_secret", "rotate_webhook_secret" } do
        local _, refused = refuses(op, "project_name")
        assert.is_truthy(refused, op .. " takes a project_name")
      end
    end)
  end)

  it("has every client option, each with its default, and no option the client lacks", function()
    local options = require "queue_jobs.options"
    local documented = fields(d, "queue_jobs.ClientOptions")
    assert_same_set(options.CLIENT, "queue_jobs.options.CLIENT", documented,
      TYPES .. " (queue_jobs.ClientOptions)")
    for name, v in pairs(options.DEFAULTS) do
      if type(v) == "number" or type(v) == "boolean" then
        local desc = d.classes["queue_jobs.ClientOptions"].fields[name]
        local said = desc:match("Default: ([^%s]+)")
        said = said and said:gsub("%.$", "")
        assert.equal(tostring(v), said, "the default of " .. name .. " in " .. TYPES)
      end
    end
    assert.same({ "queue_jobs.CreateArgs", "queue_jobs.ClientOptions" },
      d.classes["queue_jobs.CreateOptions"].parents)
  end)

  it("gives json.encode and json.decode only options they read", function()
    for fname, class in pairs { encode = "queue_jobs.EncodeOptions", decode = "queue_jobs.DecodeOptions" } do
      for name in pairs(fields(d, class)) do
        -- an option the codec reads refuses a table; one it does not read is ignored
        local ok, err = pcall(qj.json[fname], fname == "encode" and {} or "1", { [name] = {} })
        assert(not ok and err:find("option '" .. name .. "'", 1, true),
          TYPES .. " gives json." .. fname .. " an option " .. name .. " that it does not read")
      end
    end
  end)

  it("has every error kind the client and the codec make, and no other", function()
    local made = {}
    for _, f in ipairs { "src/transfer.h", "src/json_encode.c", "src/json_decode.c" } do
      local src = assert(helpers.read_file(root .. "/" .. f), f)
      for kind in src:gmatch('#define QJ_ERR_[%u_]+%s+"([%l_]+)"') do made[kind] = true end
      for call in src:gmatch("qj_push_error%(L,([^;]*)") do
        for kind in call:gmatch('"([%l_]+)"') do made[kind] = true end
      end
    end
    local ok, sources = helpers.shell("cd " .. q(root) .. " && cat lua/queue_jobs.lua lua/queue_jobs/*.lua")
    assert(ok, sources)
    for kind in sources:gmatch('kind%s*=%s*"([%l_]+)"') do made[kind] = true end
    local listed = {}
    for _, k in ipairs(assert(d.aliases["queue_jobs.ErrorKind"], "no ---@alias queue_jobs.ErrorKind")) do
      listed[k] = true
    end
    assert.is_truthy(made.http and made.network)
    assert_same_set(made, "the kinds in src/ and lua/", listed, TYPES .. " (queue_jobs.ErrorKind)")
  end)

  it("is installed by make install-types, and removed by make uninstall", function()
    local ok, tmp = helpers.shell("mktemp -d")
    tmp = assert(ok and tmp:match("^(/%S+)"), "mktemp -d failed")
    local make = ("cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s %%s DESTDIR=%s " ..
      "PREFIX=/usr INST_LUADIR=/lua INST_LIBDIR=/lib INST_BINDIR=/bin"):format(q(root), q(tmp))
    assert(helpers.shell(make:format("install-types")))
    local installed = helpers.read_file(tmp .. "/usr/share/saladcloud-queue-jobs/types/queue_jobs.lua")
    assert(helpers.shell(make:format("uninstall")))
    local left = select(2, helpers.shell("cd " .. q(tmp) .. " && find . -type f"))
    helpers.shell("rm -rf " .. q(tmp))
    assert.equal(text, installed)
    assert.equal("", left)
  end)

  it("is in the rock: every rockspec copies types/, which holds the definition file alone", function()
    local ok, rockspecs = helpers.shell("cd " .. q(root) .. " && ls rockspec/*.rockspec")
    assert(ok, rockspecs)
    for rockspec in rockspecs:gmatch("[^\n]+") do
      local env = {}
      assert(compat.load(assert(helpers.read_file(root .. "/" .. rockspec)), "=" .. rockspec, "t", env))()
      local copied = {}
      for _, dir in ipairs(env.build.copy_directories or {}) do copied[dir] = true end
      assert.is_truthy(copied.types, rockspec .. " does not list types in build.copy_directories")
    end
    local _, listing = helpers.shell("cd " .. q(root) .. " && find types -type f | sort")
    assert.equal(TYPES .. "\n", listing)
  end)
end)
