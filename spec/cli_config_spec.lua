-- salad-jobs' config file (docs/cli.md, "Config file and profiles"): which files it trusts
-- and which key files it takes (as ssh does), the lines it reads, where a relative key file
-- is, what an empty environment variable means, and messages that say where a value comes
-- from and quote none.
local helpers = require "support.helpers"
local cli = require "support.cli"
local scripted = require "support.scripted"

local q = helpers.shell_quote
local Q = cli.Q

local dirs = {}
local function tmpdir()
  local ok, out = helpers.shell("mktemp -d")
  local d = assert(ok and out:match("^(/%S+)"))
  dirs[#dirs + 1] = d
  return d
end

-- Writes dir/salad-jobs/config.ini with text and mode: its path.
local function config(dir, text, mode)
  os.execute("mkdir -p " .. q(dir .. "/salad-jobs"))
  local path = dir .. "/salad-jobs/config.ini"
  os.remove(path)
  helpers.write_file(path, text)
  assert(helpers.shell("chmod " .. mode .. " " .. q(path)))
  return path
end

-- A file holding s with mode: its path.
local function file(path, s, mode)
  helpers.write_file(path, s)
  assert(helpers.shell("chmod " .. mode .. " " .. q(path)))
  return path
end

-- (A command run inside sh below gets `make check`'s sanitizer settings through
-- helpers.sanitizer_env, sh itself runs without them.)

-- The environment of a user with no SALAD_* settings: all from the profile.
local function bare(dir, extra)
  local e = { XDG_CONFIG_HOME = dir, HOME = dir, SALAD_API_KEY = false, SALAD_BASE_URL = false,
    SALAD_ORGANIZATION = false, SALAD_PROJECT = false }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function is_root()
  local ok, out = helpers.shell("id -u")
  return ok and out:match("^0%s") ~= nil
end

describe("salad-jobs' config file", function()
  local emu, srv

  after_each(function()
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    if srv then srv.stop() end
    emu, srv = nil, nil
    cli.cleanup()
    for _, d in ipairs(dirs) do helpers.shell("rm -rf " .. q(d)) end
    dirs = {}
  end)

  it("is refused, whatever it holds, when others may write it or another user owns it; " ..
     "nothing is sent", function()
    srv = scripted.start { default = { status = 200, body = '{"items":[]}' } }
    local base = "http://127.0.0.1:" .. srv.port .. "/api/public"
    local dir = tmpdir()
    local secret = file(dir .. "/secret", "sk-not-a-key-but-private\n", "600")
    local text = table.concat({ "[default]", "organization = " .. cli.ORG, "project = " .. cli.PROJ,
      "base_url = " .. base, "api_key_file = " .. secret }, "\n") .. "\n"
    -- the same file, private, is used (the server sees the request)
    config(dir, text, "600")
    local code, _, err = cli.run(nil, { "queues" }, { env = bare(dir) })
    assert.are.equal(0, code, err)
    assert.are.equal(1, #srv.requests())
    for _, mode in ipairs { "666", "664", "646", "620", "602" } do
      local path = config(dir, text, mode)
      local out
      code, out, err = cli.run(nil, { "queues" }, { env = bare(dir) })
      assert.are.equal(2, code, mode)
      assert.are.equal("", out)
      assert.matches("config " .. path .. ": its group or others may write it (chmod go-w it)", err, 1, true)
      assert.is_nil(err:find("127.0.0.1", 1, true), err)
      -- refused with a key from the environment too, and for a command that sends nothing
      code = cli.run(nil, { "queues" }, { env = bare(dir, { SALAD_API_KEY = cli.KEY }) })
      assert.are.equal(2, code, mode)
    end
    if is_root() then   -- another user's file (only root can give one away)
      local path = config(dir, text, "600")
      assert(helpers.shell("chown nobody " .. q(path)))
      local out
      code, out, err = cli.run(nil, { "queues" }, { env = bare(dir) })
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.matches("config " .. path .. ": another user owns it (chown it", err, 1, true)
    end
    assert.are.equal(1, #srv.requests())
  end)

  it("refuses a key file its group or others may read (the profile's and --api-key-file)", function()
    srv = scripted.start { default = { status = 200, body = '{"items":[]}' } }
    local base = "http://127.0.0.1:" .. srv.port .. "/api/public"
    local dir = tmpdir()
    local kf = file(dir .. "/key", cli.KEY .. "\n", "644")
    config(dir, table.concat({ "[default]", "organization = " .. cli.ORG, "project = " .. cli.PROJ,
      "base_url = " .. base, "api_key_file = " .. kf }, "\n") .. "\n", "600")
    for _, mode in ipairs { "644", "640", "604" } do
      assert(helpers.shell("chmod " .. mode .. " " .. q(kf)))
      local code, out, err = cli.run(nil, { "queues" }, { env = bare(dir) })
      assert.are.equal(2, code, mode .. ": " .. err)
      assert.are.equal("", out)
      assert.matches("api_key_file: cannot use it: its group or others may read it (chmod 600 it)", err, 1, true)
      code, out, err = cli.run(nil, { "--api-key-file", kf, "queues" }, { env = bare(dir) })
      assert.are.equal(2, code, mode .. ": " .. err)
      assert.matches("--api-key-file: cannot use it: its group or others may read it (chmod 600 it)", err, 1, true)
      assert.is_nil((out .. err):find(cli.KEY, 1, true))
    end
    assert.are.equal(0, #srv.requests())
    assert(helpers.shell("chmod 400 " .. q(kf)))
    local code, _, err = cli.run(nil, { "--api-key-file", kf, "queues" }, { env = bare(dir) })
    assert.are.equal(0, code, err)
    -- a pipe is read as it is (its mode is the pipe's)
    local ok, got = helpers.run({ "sh", "-c", "cat " .. q(kf) .. " | " ..
      helpers.command(cli.argv { "--api-key-file", "/dev/stdin", "queues" },
        { env = helpers.sanitizer_env(cli.env(nil, bare(dir))) }) ..
      " >/dev/null" }, { plain = true })
    assert.is_true(ok, got)
    assert.are.equal(2, #srv.requests())
  end)

  it("refuses a setting before any [section], and skips a byte order mark", function()
    local dir = tmpdir()
    local code, out, err
    config(dir, "project = sk-secret-value-1\n[default]\n", "600")
    code, out, err = cli.run(nil, { "queues" }, { env = bare(dir) })
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    assert.matches(": line 1: a setting outside a [section]", err, 1, true)
    assert.is_nil(err:find("traceback", 1, true))
    assert.is_nil(err:find("sk-secret", 1, true))
    emu = cli.start()
    assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
    local kf = file(dir .. "/key", cli.KEY .. "\n", "600")
    config(dir, "\239\187\191; a BOM first\r\n[default]\r\norganization = " .. cli.ORG ..
      "\r\nproject = " .. cli.PROJ .. "\r\nbase_url = " .. emu.url ..
      "\r\napi_key_file = " .. kf .. "\r\n", "600")
    code, out, err = cli.run(emu, { "queues" }, { env = bare(dir) })
    assert.are.equal(0, code, err)
    assert.are.equal(Q, cli.jsonl(out)[1].name)
  end)

  it("takes an empty SALAD_BASE_URL, SALAD_ORGANIZATION or SALAD_PROJECT as unset", function()
    emu = cli.start()
    assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
    local dir = tmpdir()
    config(dir, table.concat({ "[default]", "organization = " .. cli.ORG, "project = " .. cli.PROJ,
      "base_url = " .. emu.url }, "\n") .. "\n", "600")
    local code, out, err = cli.run(emu, { "queues" }, { env = bare(dir, { SALAD_API_KEY = cli.KEY,
      SALAD_BASE_URL = "", SALAD_ORGANIZATION = "", SALAD_PROJECT = "" }) })
    assert.are.equal(0, code, err)
    assert.are.equal(Q, cli.jsonl(out)[1].name)
  end)

  it("says why a config file that is there cannot be read; only a missing one is no config", function()
    local dir = tmpdir()
    os.execute("mkdir -p " .. q(dir .. "/salad-jobs/config.ini"))
    local code, out, err = cli.run(nil, { "queues" }, { env = bare(dir, { SALAD_API_KEY = cli.KEY }) })
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    assert.matches("config " .. dir .. "/salad-jobs/config.ini: cannot read it: it is a directory", err, 1, true)
    -- a path through a file: not "no such file"
    local f = file(dir .. "/plain", "x", "600")
    code, out, err = cli.run(nil, { "queues" }, { env = bare(dir, { XDG_CONFIG_HOME = f }) })
    assert.are.equal(2, code, err)
    assert.are.equal("", out)
    assert.matches("cannot read it: Not a directory", err, 1, true)
    if not is_root() then   -- (root reads a file of mode 000)
      local dir2 = tmpdir()
      config(dir2, "[default]\n", "000")
      code, out, err = cli.run(nil, { "queues" }, { env = bare(dir2, { SALAD_API_KEY = cli.KEY }) })
      assert.are.equal(2, code, err)
      assert.are.equal("", out)
      assert.matches("cannot read it: Permission denied", err, 1, true)
    end
  end)

  it("says which profile a bad value comes from, quoting none", function()
    local dir = tmpdir()
    for _, c in ipairs {
      { "[default]\norganization = Sk_Secret_Value_1\n", ": [default]: organization must be 2..63" },
      { "[profile dev]\nproject = sk secret value 1\n", ": [profile dev]: project must be 2..63", "dev" },
      { "[default]\nbase_url = ftp://sk-secret-value-1/\n", ": [default]: base_url must use https" },
      { "[default]\nbase_url = sk-secret-value-1\n", ": [default]: base_url must be an absolute" },
    } do
      local path = config(dir, c[1], "600")
      local code, out, err = cli.run(nil, c[3] and { "--profile", c[3], "queues" } or { "queues" },
        { env = bare(dir, { SALAD_API_KEY = cli.KEY }) })
      assert.are.equal(2, code, c[1])
      assert.are.equal("", out)
      assert.matches("config " .. path .. c[2], err, 1, true)
      assert.is_nil(err:lower():find("sk.secret", 1), err)
    end
  end)

  it("takes a comment after a value, after white space, as no part of it", function()
    emu = cli.start()
    assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
    local dir = tmpdir()
    local kf = file(dir .. "/key", cli.KEY .. "\n", "600")
    config(dir, "[default]\norganization = " .. cli.ORG .. " ; the org\nproject = " .. cli.PROJ ..
      "\t# the project\nbase_url = " .. emu.url .. "  ;\napi_key_file = " .. kf .. " # mine\n", "600")
    local code, out, err = cli.run(emu, { "queues" }, { env = bare(dir) })
    assert.are.equal(0, code, err)
    assert.are.equal(Q, cli.jsonl(out)[1].name)
  end)

  it("reads a relative api_key_file from the config file's directory", function()
    emu = cli.start()
    assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
    local dir = tmpdir()
    os.execute("mkdir -p " .. q(dir .. "/salad-jobs"))
    file(dir .. "/salad-jobs/dev.key", cli.KEY .. "\n", "600")
    config(dir, table.concat({ "[default]", "organization = " .. cli.ORG, "project = " .. cli.PROJ,
      "base_url = " .. emu.url, "api_key_file = dev.key" }, "\n") .. "\n", "600")
    -- run elsewhere: the current directory has no dev.key
    local ok, got = helpers.run({ "sh", "-c", "cd / && " ..
      helpers.command(cli.argv { "queues" }, { env = helpers.sanitizer_env(cli.env(emu, bare(dir))) }) .. " 2>&1" }, { plain = true })
    assert.is_true(ok, got)
    assert.matches(Q, got, 1, true)
  end)
end)
