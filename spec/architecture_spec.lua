-- The invariants of ARCHITECTURE.md that a machine can check: the transfer layer calls no Lua,
-- every Lua file compiles on the Lua at hand, the Lua layers require only the ones below them
-- and read no other module's private fields, and comments point only inside the repository.
local helpers = require "support.helpers"

local root = os.getenv("QJ_ROOT") or "."
local read = helpers.read_file

local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

describe("the architecture", function()
  -- the transfer layer, the key's matcher (which the transfer layer calls), the engine's
  -- multi core and its backends, the webhook signatures (which the fuzzer builds without
  -- Lua) and the emulator's worker and delivery threads, their POST (libcurl's callbacks
  -- there must not reach Lua either) and the check of a worker's answer (run outside the
  -- lock). The backend not chosen at build time is an empty object (src/engine_backend.h).
  local backend_not_built = { ["obj/engine_epoll.o"] = true, ["obj/engine_poll.o"] = true }
  for _, file in ipairs { "obj/transfer.o", "obj/redact.o", "obj/engine.o", "obj/engine_epoll.o",
      "obj/engine_poll.o", "obj/webhook.o", "emulator/worker.o", "emulator/deliver.o",
      "emulator/post.o", "emulator/jsoncheck.o" } do
    it("keeps " .. file .. " free of Lua: it needs no Lua symbol", function()
      local obj
      for _, dir in ipairs { "/asan/", "/" } do
        local path = helpers.build_dir() .. dir .. file
        if read(path) then obj = path break end
      end
      assert(obj, helpers.build_dir() .. "/" .. file .. " is not built")
      local undefined = lines_of("nm -u " .. obj)
      assert.is_true(#undefined > 0 or backend_not_built[file] and #lines_of("nm " .. obj) == 0,
        "nm listed nothing for " .. obj)
      for _, sym in ipairs(undefined) do
        assert.is_nil(sym:match("%s(luaL?_%w+)$"), file .. " uses " .. sym)
      end
    end)
  end

  -- The engine's core builds on every POSIX system: a Linux-only header is included by the
  -- epoll backend alone, inside its `#if QJ_ENGINE_EPOLL` (src/engine_backend.h).
  it("includes Linux-only headers in src/engine_epoll.c alone, inside its #if", function()
    local files = lines_of("cd " .. root .. " && git ls-files -- 'src/*.c' 'src/*.h'")
    assert.is_true(#files > 20)
    local seen = 0
    for _, f in ipairs(files) do
      local guarded = false
      for line in assert(read(root .. "/" .. f)):gmatch("[^\n]*") do
        if line:find("^#if QJ_ENGINE_EPOLL") then guarded = true end
        local header = line:match("^%s*#%s*include%s*[<\"]([^>\"]+)")
        if header and (header:find("^sys/epoll") or header:find("^sys/timerfd") or
            header:find("^sys/eventfd") or header:find("^sys/signalfd") or header:find("^linux/")) then
          assert(f == "src/engine_epoll.c", f .. " includes " .. header .. ", which only Linux has")
          assert(guarded, f .. " includes " .. header .. " outside its #if QJ_ENGINE_EPOLL")
          seen = seen + 1
        end
      end
    end
    assert.equal(2, seen) -- sys/epoll.h and sys/timerfd.h, where they belong
  end)

  -- Two kinds of file run on 5.3 and 5.4 only: the emulator's own (it embeds 5.4, or 5.3
  -- with LUA_VERSION=5.3: mk/emulator.mk) and the benchmarks (docs/building.md).
  local ONLY_53 = { "^emulator/", "^bench/" }
  it("has only Lua files that compile on the Lua running the specs", function()
    local files = lines_of("cd " .. root .. " && git ls-files -- '*.lua' '*.rockspec' .luacheckrc .busted")
    assert.is_true(#files > 30)
    for _, f in ipairs(files) do
      local skip = false
      for _, pat in ipairs(ONLY_53) do skip = skip or (_VERSION == "Lua 5.1" and f:find(pat) ~= nil) end
      local fn, err = loadfile(root .. "/" .. f)
      assert(fn or skip, ("%s does not compile on %s: %s"):format(f, _VERSION, tostring(err)))
    end
  end)

  -- The same files on every Lua installed here (CI has all four), so that syntax one of them
  -- lacks (//, bitwise operators, goto, <const> on 5.1 and LuaJIT) fails whichever one runs
  -- the specs.
  local INTERPRETERS = { "lua5.1", "luajit", "lua5.3", "lua5.4" }
  for _, lua in ipairs(INTERPRETERS) do
    it("has only Lua files that compile on " .. lua .. ", when it is installed", function()
      local _, _, missing = helpers.pipe_read("command -v " .. lua .. " >/dev/null 2>&1")
      if missing ~= 0 then
        pending(lua .. " is not installed")
        return
      end
      local old = lua == "lua5.1" or lua == "luajit"
      local list = {}
      for _, f in ipairs(lines_of("cd " .. root .. " && git ls-files -- '*.lua' '*.rockspec' bin/salad-jobs .luacheckrc .busted")) do
        local skip = false
        for _, pat in ipairs(ONLY_53) do skip = skip or (old and f:find(pat) ~= nil) end
        if not skip then list[#list + 1] = "'" .. f .. "'" end
      end
      assert.is_true(#list > 30)
      local checker = os.tmpname()
      local fh = assert(io.open(checker, "w"))
      fh:write("for i = 1, #arg do local ok, err = loadfile(arg[i]) if not ok then print(err) end end\n")
      fh:close()
      local out = lines_of("cd " .. root .. " && " .. lua .. " " .. checker .. " " .. table.concat(list, " ") .. " 2>&1")
      os.remove(checker)
      assert.are.same({}, out)
    end)
  end

  it("has no comment that cites a file outside the repository, or a section that is not there", function()
    local files = lines_of("cd " .. root .. " && git ls-files -- '*.c' '*.h' '*.lua' '*.sh' '*.mk' Makefile")
    assert.is_true(#files > 20)
    for _, f in ipairs(files) do
      local text = assert(read(root .. "/" .. f), f)
      -- the design notes live beside the repository, not in it
      for _, outside in ipairs { "DESIGN" .. ".md", "STYLE" .. ".md" } do
        assert.is_nil(text:find(outside, 1, true), f .. " cites " .. outside)
      end
      for cited in text:gmatch("([%w_./-]+%.md)") do
        assert.is_truthy(read(root .. "/" .. cited), f .. " cites " .. cited .. ", which is not in the repository")
      end
      -- a section cited beside its page, in parentheses or after a comma, is a heading there
      for cited, section in text:gmatch('([%w_./-]+%.md),? %(?"([^"\n]+)"') do
        local found = false
        for line in assert(read(root .. "/" .. cited)):gmatch("[^\n]+") do
          if line:find("^#+ ") and line:find(section, 1, true) then found = true break end
        end
        assert(found, ('%s cites the section "%s" of %s, which has no such heading'):format(f, section, cited))
      end
    end
  end)

  -- The layers of ARCHITECTURE.md's table, bottom first: module name -> layer number, from
  -- the Lua files each row names (a name without a directory is in the directory of the one
  -- before it in its row; cli/x.lua is under lua/queue_jobs/). queue_jobs.core is the binding.
  local function layers()
    local of, n = { ["queue_jobs.core"] = 0 }, 0
    for row in assert(read(root .. "/ARCHITECTURE.md")):gmatch("\n(| [^\n]+)") do
      local files = row:match("^| [^|]+ | ([^|]+) |")
      if files and files:find("%.lua`") then
        n = n + 1
        local dir
        for f in files:gmatch("`([%w_./-]+%.lua)`") do
          if f:find("^lua/") then
            dir = f:match("^(.*)/[^/]+$")
          elseif f:find("^cli/") then
            f = "lua/queue_jobs/" .. f
          else
            f = dir .. "/" .. f
          end
          of[f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/", ".")] = n
        end
      end
    end
    return of
  end

  it("has every Lua module in one layer of ARCHITECTURE.md, requiring none of a layer above", function()
    local of = layers()
    local files = lines_of("cd " .. root .. " && git ls-files -- 'lua/*.lua'")
    assert.is_true(#files > 20)
    for _, f in ipairs(files) do
      local name = f:gsub("^lua/", ""):gsub("%.lua$", ""):gsub("/", ".")
      local mine = of[name]
      assert(mine, f .. " is in no layer of ARCHITECTURE.md's table")
      for _, req in assert(read(root .. "/" .. f)):gmatch('require%s*%(?%s*(["\'])(queue_jobs[%w_.]*)%1') do
        local theirs = of[req]
        assert(theirs, f .. " requires " .. req .. ", which is in no layer")
        assert(theirs <= mine, ("%s (layer %d) requires %s, of a layer above (%d)"):format(
          f, mine, req, theirs))
      end
    end
  end)

  it("has no Lua module that reads another's private (_-prefixed) fields", function()
    local files = lines_of("cd " .. root .. " && git ls-files -- 'lua/*.lua' 'emulator/*.lua'")
    local texts, own = {}, {}
    for _, f in ipairs(files) do
      local text = assert(read(root .. "/" .. f)):gsub("%-%-[^\n]*", "")   -- code, not comments
      texts[f], own[f] = text, {}
      -- a field a module makes: assigned (x._name = ...) or in a constructor (_name = ...)
      for name in text:gmatch("[%.%s{,](_[%a][%w_]*)%s*=[^=]") do own[f][name] = true end
    end
    -- (a field is known by its name: a module that makes _x itself may read another's _x)
    local reads = { "[%w_%]%)]%.(_[%a][%w_]*)", "%[%s*[\"'](_[%a][%w_]*)[\"']%s*%]",
      "rawget%s*%(%s*[^,]+,%s*[\"'](_[%a][%w_]*)[\"']" }
    for _, f in ipairs(files) do
      for _, pattern in ipairs(reads) do
        for name in texts[f]:gmatch(pattern) do
          if name ~= "_VERSION" and name:sub(2, 2) ~= "_" then
            assert(own[f][name], f .. " reads " .. name .. ", a field it does not make")
          end
        end
      end
    end
  end)

  it("lists every make target in make help (mk/help.txt), and no other", function()
    local defined, listed = {}, {}
    local files = lines_of("ls " .. root .. "/Makefile " .. root .. "/mk/*.mk")
    for _, f in ipairs(files) do
      for line in (read(f) or ""):gmatch("[^\n]+") do
        local name = line:match("^([%l][%w%-]*)%s*:") -- a rule (not VAR := or VAR ?=)
        if name and not line:match("^[%w%-]+%s*[:?+]=") then defined[name] = true end
      end
    end
    for line in assert(read(root .. "/mk/help.txt")):gmatch("[^\n]+") do
      local name = line:match("^  ([%l][%w%-]*)  ")
      if name then listed[name] = true end
    end
    for name in pairs(defined) do assert.is_true(listed[name], name .. " is not in mk/help.txt") end
    for name in pairs(listed) do assert.is_true(defined[name], name .. " is no target") end
  end)
end)
