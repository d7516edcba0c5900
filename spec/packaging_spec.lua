-- The build and the rock: what `make install` and `luarocks make` produce (the rock's build
-- is the Makefile's rock-install, mk/rock.mk): every lua/**/*.lua file installed as the
-- module its path names, an installed salad-jobs that finds its own modules, a checkout left
-- as it was by luarocks make, and a command per Lua version.
local helpers = require "support.helpers"
local compat = require "queue_jobs.compat"

local root = os.getenv("QJ_ROOT") or "."
local q = helpers.shell_quote
local ROCKSPEC = "rockspec/saladcloud-queue-jobs-scm-1.rockspec"

local run = helpers.shell

--- The sorted lines a shell command prints (raises when it fails).
local function lines_of(cmd)
  local ok, out = run(cmd)
  assert(ok, cmd .. ": " .. out)
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  table.sort(lines)
  return lines
end

--- The files under dir (relative to the checkout) whose names match the shell pattern, as
-- sorted paths relative to the checkout.
local function files(dir, pattern)
  return lines_of(("cd %s && find %s -type f -name %s"):format(q(root), q(dir), q(pattern)))
end

--- The sorted lists a (named a_name) and b (b_name) hold the same items, or an assertion
-- names the items only one holds.
local function assert_same_list(a, a_name, b, b_name)
  local only_a, only_b, in_b = {}, {}, {}
  for _, x in ipairs(b) do in_b[x] = true end
  for _, x in ipairs(a) do
    if not in_b[x] then only_a[#only_a + 1] = x end
    in_b[x] = nil
  end
  for _, x in ipairs(b) do
    if in_b[x] then only_b[#only_b + 1] = x end
  end
  assert(#only_a == 0 and #only_b == 0, ("only in %s: %s; only in %s: %s"):format(a_name,
    table.concat(only_a, " "), b_name, table.concat(only_b, " ")))
end

describe("packaging", function()
  it("every rockspec builds and installs through the Makefile's rock-install target", function()
    for _, rs in ipairs(lines_of("cd " .. q(root) .. " && ls rockspec/*.rockspec")) do
      local env = {}
      assert(compat.load(assert(helpers.read_file(root .. "/" .. rs)), "=" .. rs, "t", env))()
      local build = env.build
      assert.are.same({ "make", false, "rock-install" }, { build.type, build.build_pass, build.install_target }, rs)
      assert.is_nil(build.install, rs)   -- the commands are rock-install's (versioned)
      assert.are.same({ "$(LIBDIR)", "$(LUADIR)", "$(BINDIR)" }, { build.install_variables.INST_LIBDIR,
        build.install_variables.INST_LUADIR, build.install_variables.INST_BINDIR }, rs)
    end
  end)

  it("luarocks make from the checkout leaves it as it was, and luarocks remove leaves no command", function()
    local v = _VERSION:match("%d+%.%d+")
    -- (LuaJIT: the rock for 5.1 with LuaJIT's headers, as the README says)
    local incdir = rawget(_G, "jit") and " LUA_INCDIR=/usr/include/luajit-2.1" or ""
    local ok, tree = run("mktemp -d")
    tree = assert(ok and tree:match("^(/%S+)"), "mktemp -d failed")
    local status = "cd " .. q(root) .. " && git status --porcelain --ignored"
    local ok1, before = run(status)
    assert(ok1, before)
    local ok2, log = run(("cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL luarocks --lua-version %s " ..
      "--tree %s make --deps-mode=none %s CURL_INCDIR=/usr/include/$(gcc -print-multiarch)%s")
      :format(q(root), v, q(tree), ROCKSPEC, incdir))
    local _, after = run(status)
    local bins = lines_of("cd " .. q(tree) .. " && find bin -type f")
    run(("luarocks --lua-version %s --tree %s remove saladcloud-queue-jobs"):format(v, q(tree)))
    local left = lines_of("cd " .. q(tree) .. " && find . -type f ! -name manifest")
    run("rm -rf " .. q(tree))
    assert(ok2, log)
    assert.are.equal(before, after)
    assert.are.same(v == "5.4" and { "bin/salad-jobs", "bin/salad-jobs-5.4" } or { "bin/salad-jobs-" .. v }, bins)
    assert.are.same({}, left)
  end)

  it("make install-lua installs every Lua module under lua/, and make uninstall removes them", function()
    local ok, tmp = run("mktemp -d")
    tmp = assert(ok and tmp:match("^(/%S+)"), "mktemp -d failed")
    -- a make of its own, not a part of the one running the specs (if any)
    local make = ("cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s %%s DESTDIR=%s " ..
      "INST_LUADIR=/lua INST_LIBDIR=/lib INST_BINDIR=/bin"):format(q(root), q(tmp))
    local installed = lines_of(make:format("install-lua") .. " >/dev/null && cd " .. q(tmp) ..
      " && find . -type f")
    for i, path in ipairs(installed) do installed[i] = path:gsub("^%./", "") end
    assert_same_list(files("lua", "*.lua"), "lua/**/*.lua", installed, "what make install-lua installs")
    local left = lines_of(make:format("uninstall") .. " && cd " .. q(tmp) .. " && find . -type f")
    run("rm -rf " .. q(tmp))
    assert.same({}, left)
  end)

  it("make install-bin installs salad-jobs for the Lua it was built for, and it runs", function()
    local ok, tmp = run("mktemp -d")
    tmp = assert(ok and tmp:match("^(/%S+)"), "mktemp -d failed")
    local lua = os.getenv("LUA") or "lua5.4"
    local make = ("cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s %%s DESTDIR=%s " ..
      "INST_LUADIR=/lua INST_LIBDIR=/lib INST_BINDIR=/bin LUA=%s"):format(q(root), q(tmp), q(lua))
    lines_of(make:format("install-bin"))
    local bin = tmp .. "/bin/salad-jobs"
    local text = assert(helpers.read_file(bin))
    local lua_path = lines_of("command -v " .. q(lua))[1]
    assert.are.equal("#!" .. lua_path, text:match("^[^\n]*"))
    assert.are.equal(select(2, helpers.read_file(root .. "/bin/salad-jobs"):gsub("\n", "")),
      select(2, text:gsub("\n", "")))   -- the rest as it is
    -- (with make check's sanitizer settings, which the core of this run needs)
    local ok2, out = helpers.run({ bin, "--help" }, { env = { LUA_PATH = package.path,
      LUA_CPATH = package.cpath }, stderr = true })
    assert.is_true(ok2, out)
    assert.is_truthy(out:find("usage: salad-jobs [OPTIONS] COMMAND", 1, true), out)
    local left = lines_of(make:format("uninstall") .. " && cd " .. q(tmp) .. " && find . -type f")
    run("rm -rf " .. q(tmp))
    assert.same({}, left)
  end)

  -- salad-jobs as a user runs it: `make install` into a prefix of its own (and staged with
  -- DESTDIR, run from the staging directory), then --help and a real command against the
  -- emulator, with a clean environment: no LUA_PATH, no LUA_CPATH, no sanitizer settings.
  describe("an installed salad-jobs finds its own modules", function()
    local helpers_emu, tmp
    before_each(function()
      local ok, out = run("mktemp -d")
      tmp = assert(ok and out:match("^(/%S+)"), "mktemp -d failed")
      helpers_emu = helpers.start_emulator()
    end)
    after_each(function()
      helpers_emu:stop()
      run("rm -rf " .. q(tmp))
    end)

    --- `make install` with the given variables (a make of its own, for this spec's Lua).
    local function install(vars)
      local lua = os.getenv("LUA") or "lua5.4"
      local cmd = ("cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s install LUA=%s " ..
        "LUA_VERSION=%s %s"):format(q(root), q(lua), rawget(_G, "jit") and "luajit" or _VERSION:match("%d+%.%d+"), vars)
      local ok, out = run(cmd)
      assert(ok, cmd .. ": " .. out)
    end

    --- salad-jobs at bin, run with nothing but PATH and HOME and the given variables.
    local function salad_jobs(bin, args, env)
      local words = { "env", "-i", "PATH=/usr/bin:/bin", "HOME=" .. tmp }
      for k, v in pairs(env or {}) do words[#words + 1] = k .. "=" .. v end
      words[#words + 1] = bin
      for _, a in ipairs(args) do words[#words + 1] = a end
      return helpers.shell(words)
    end

    local function check(bin)
      local ok, out = salad_jobs(bin, { "--help" })
      assert.is_true(ok, out)
      assert.is_truthy(out:find("usage: salad-jobs [OPTIONS] COMMAND", 1, true), out)
      local status, body = helpers_emu:request("POST", helpers.JOBS, { json = { input = { n = 1 } } })
      assert.are.equal(201, status, body)
      local id = helpers.decode(body).id
      local ok2, got = salad_jobs(bin, { "get", "--queue", "fifo-queue", id }, {
        SALAD_BASE_URL = helpers_emu.url, SALAD_API_KEY = helpers_emu.api_key,
        SALAD_ORGANIZATION = "acme-corp", SALAD_PROJECT = "dev-env" })
      assert.is_true(ok2, got)
      local job = helpers.decode(got:match("^[^\n]+"))
      assert.are.same({ id, "pending", 1 }, { job.id, job.status, job.input.n })
    end

    it("under a PREFIX", function()
      install("PREFIX=" .. q(tmp .. "/prefix"))
      check(tmp .. "/prefix/bin/salad-jobs")
    end)

    it("staged under DESTDIR, run from there, and moved elsewhere", function()
      install("DESTDIR=" .. q(tmp .. "/stage") .. " PREFIX=/opt/salad")
      check(tmp .. "/stage/opt/salad/bin/salad-jobs")
      -- the whole prefix moved: it still finds its own modules
      assert(run("mv " .. q(tmp .. "/stage/opt/salad") .. " " .. q(tmp .. "/moved")))
      check(tmp .. "/moved/bin/salad-jobs")
    end)
  end)

  it("builds a core that does not link liblua", function()
    local so
    for template in package.cpath:gmatch("[^;]+") do   -- package.searchpath (5.1 has none)
      local path = template:gsub("%?", "queue_jobs/core")
      local f = io.open(path, "rb")
      if f then
        f:close()
        so = so or path
      end
    end
    assert.is_string(so)
    local needed = table.concat(lines_of("readelf -d " .. q(so)), "\n")
    assert.matches("NEEDED", needed)
    assert.is_nil(needed:find("liblua", 1, true))
  end)

  it("has one version everywhere", function()
    local qj = require "queue_jobs"
    assert.matches("^%d+%.%d+%.%d+$", qj._VERSION)
    assert.equal(require("queue_jobs.core")._VERSION, qj._VERSION)
  end)
end)
