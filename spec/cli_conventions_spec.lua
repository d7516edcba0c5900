-- salad-jobs' conventions (issue #27, item 6; docs/cli.md): short flags, --version, help
-- [COMMAND], usage lines that name every option, --output json|table, list --limit
-- --status, --summary-json, completion scripts, the config file's profiles, the man page.
local helpers = require "support.helpers"
local cli = require "support.cli"
local args = require "queue_jobs.cli.args"
local scripted = require "support.scripted"
local tables = require "queue_jobs.cli.tables"

local q = helpers.shell_quote
local root = os.getenv("QJ_ROOT") or "."
local Q = cli.Q
local _

-- A fresh directory, removed by rm_dirs().
local dirs = {}
local function tmpdir()
  local ok, out = helpers.shell("mktemp -d")
  local d = assert(ok and out:match("^(/%S+)"))
  dirs[#dirs + 1] = d
  return d
end
local function rm_dirs()
  for _, d in ipairs(dirs) do helpers.shell("rm -rf " .. q(d)) end
  dirs = {}
end

-- The command on a terminal (script(1) gives it one): exit code, what the terminal showed.
-- script runs without `make check`'s sanitizer settings, the command with them.
local function on_terminal(emu, argv, env)
  local inner = helpers.command(cli.argv(argv), { env = helpers.sanitizer_env(cli.env(emu, env)) })
  local ok, out, code = helpers.run("script -qec " .. q(inner) .. " /dev/null </dev/null", { plain = true })
  return code, (out:gsub("\r\n", "\n")), ok
end

describe("salad-jobs' command line conventions", function()
  local emu

  after_each(function()
    if emu then assert.are.equal(0, emu:stop(), emu.stderr) end
    emu = nil
    cli.cleanup()
    rm_dirs()
  end)

  it("reads short options getopt's way, and names only the letter of one it does not know", function()
    local O = { quiet = { short = "q" }, verbose = { short = "v" }, queue = { takes = "string" },
      output = { short = "o", check = function(v) return v end } }
    assert.are.same({ quiet = true, verbose = true, output = "table" },
      (args.parse({ "-q", "-v", "-o", "table" }, 1, O)))
    assert.are.same({ quiet = true, verbose = true, output = "json" }, (args.parse({ "-qvojson" }, 1, O)))
    assert.are.same({ output = "x", help = true }, (args.parse({ "-ox", "-h" }, 1, O)))
    local _, why = args.parse({ "-qZsk-hunter2" }, 1, O)
    assert.are.equal("-Z is not an option here (see --help)", why)
    assert.is_nil((args.parse({ "-o" }, 1, O)))
    -- the help names the short form
    assert.matches("\n  %-q, %-%-quiet ", args.help({ "usage: x" }, { quiet = { short = "q", help = "h" } }))
  end)

  it("--version and -V print the version on stdout, before or after a command", function()
    local version = require("queue_jobs.core")._VERSION
    for _, a in ipairs { { "--version" }, { "-V" }, { "list", "-V" } } do
      local code, out, err = cli.run(nil, a)
      assert.are.equal(0, code, err)
      assert.are.equal(("salad-jobs %s (%s)\n"):format(version, _VERSION), out)
    end
  end)

  it("help [COMMAND] prints what --help prints; short flags work on the commands", function()
    local code, out = cli.run(nil, { "help" })
    assert.are.equal(0, code)
    local c2, top = cli.run(nil, { "--help" })
    assert.are.equal(0, c2)
    assert.are.equal(top, out)
    for _, name in ipairs { "submit", "wait", "results", "get", "list", "cancel", "resubmit",
                            "secret", "queues", "completion" } do
      local h1, o1 = cli.run(nil, { "help", name })
      local h2, o2 = cli.run(nil, { name, "--help" })
      assert.are.equal(0, h1, name)
      assert.are.equal(0, h2, name)
      assert.are.equal(o2, o1, name)
      assert.matches("^usage: salad%-jobs " .. name, o1)
    end
    local h, _, err = cli.run(nil, { "help", "sk-not-a-command-but-a-key-1234567890" })
    assert.are.equal(2, h)
    assert.matches("the argument is not a command", err, 1, true)
    assert.is_nil(err:find("sk-not", 1, true))
    code, _, err = cli.run(nil, { "-q", "-v", "list", "-x" })
    assert.are.equal(2, code)
    assert.matches("-x is not an option here", err, 1, true)
  end)

  it("each command's usage lines name every option it has; secret has no --project; submit " ..
     "names exit 143", function()
    local Cli = require "queue_jobs.cli"
    for _, c in ipairs(Cli.COMMANDS) do
      if c[2] then
        local spec = Cli.command(c[1])
        local usage = table.concat(spec.usage, "\n"):match("^(.-)\n\n")
        for name in pairs(spec.options) do
          assert.truthy(usage:find("--" .. name, 1, true), c[1] .. "'s usage omits --" .. name)
        end
      end
    end
    local code, out = cli.run(nil, { "secret", "--help" })
    assert.are.equal(0, code)
    assert.is_nil(out:find("--project", 1, true))
    local err
    code, _, err = cli.run(nil, { "secret", "--project", "p" })
    assert.are.equal(2, code)
    assert.matches("--project is not an option here", err, 1, true)
    code, out = cli.run(nil, { "submit", "--help" })
    assert.are.equal(0, code)
    assert.matches("143 terminated", out, 1, true)
    -- --output and --summary-json only where they mean something
    code, out = cli.run(nil, { "secret", "--help" })
    assert.are.equal(0, code)
    assert.is_nil(out:find("--output", 1, true))
    assert.is_nil(out:find("--summary-json", 1, true))
    code, _, err = cli.run(nil, { "-o", "table", "submit", "--queue", Q, "--check" })
    assert.are.equal(2, code)
    assert.matches("--output table goes with list, get and queues", err, 1, true)
  end)

  it("takes or refuses an option alike before and after the command's name; says a missing " ..
     "value as missing, and where help is once", function()
    emu = cli.start()
    assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
    local f = cli.write_lines { '{"input": 1}' }
    local version = require("queue_jobs.core")._VERSION
    for _, pair in ipairs {
      { { "submit", "--check", "--queue", Q, "--output", "json", f },
        { "--output", "json", "submit", "--check", "--queue", Q, f } },
      { { "queues", "--summary-json" }, { "--summary-json", "queues" } },
      { { "get", "--queue", Q, "--summary-json", "x" }, { "--summary-json", "get", "--queue", Q, "x" } },
      { { "secret", "--project", "p" }, { "--project", "p", "secret" } },
      { { "completion", "bash", "--verbose" }, { "--verbose", "completion", "bash" } },
      { { "help", "--version" }, { "--version", "help" } },
      { { "help", "-V" }, { "-V", "help" } },
    } do
      local c1, o1, e1 = cli.run(emu, pair[1])
      local c2, o2, e2 = cli.run(emu, pair[2])
      local what = table.concat(pair[1], " ") .. " / " .. table.concat(pair[2], " ")
      assert.are.equal(c1, c2, what .. ": " .. e1 .. e2)
      assert.are.equal(o1, o2, what)
      if pair[1][1] == "help" then
        assert.are.equal(0, c1, what)
        assert.matches(version, o1, 1, true)
      elseif pair[1][1] == "submit" then
        assert.are.equal(0, c1, what .. ": " .. e1)
      else
        assert.are.equal(2, c1, what)
        local opt = pair[1][1] == "secret" and "--project" or
          pair[1][1] == "completion" and "--verbose" or "--summary-json"
        assert.matches(opt, e1, 1, true)
        assert.matches(opt, e2, 1, true)
      end
    end
    for _, c in ipairs {
      { { "list", "--queue", Q, "-o" }, "--output needs a value" },
      { { "list", "--queue", Q, "--output" }, "--output needs a value" },
      { { "list", "--queue", Q, "--status" }, "--status needs a value" },
      { { "list", "--queue", Q, "--limit" }, "--limit needs a value" },
      { { "list", "--queue", Q, "--bogus" }, "--bogus is not an option here (see: salad-jobs list --help)\n" },
      { { "-Z", "list" }, "-Z is not an option here (see: salad-jobs --help)\n" },
    } do
      local code, _, err = cli.run(emu, c[1])
      assert.are.equal(2, code, err)
      assert.matches(c[2], err, 1, true)
      local _, hints = err:gsub("%(see", "")
      assert.are.equal(1, hints, err)
    end
  end)

  it("list --limit --status, --output json|table (table on a terminal), get and queues as tables",
    function()
    emu = cli.start()
    local lines = {}
    for i = 1, 7 do lines[i] = ('{"input": {"n": %d}}'):format(i) end
    local code, out, err = cli.run(emu, { "submit", "-q", "--queue", Q, "--no-journal",
      "--rate-limit", "none", cli.write_lines(lines) })
    assert.are.equal(0, code, err)
    assert.are.equal("", err)   -- -q: no summary
    local ids = {}
    for _, l in ipairs(cli.jsonl(out)) do ids[l.line] = l.id end
    assert.are.equal(200, emu:set_status(ids[2], "succeeded", { ok = true }))
    assert.are.equal(200, emu:set_status(ids[5], "succeeded", { ok = true }))
    -- piped: JSON lines
    code, out, err = cli.run(emu, { "list", "--queue", Q, "--limit", "3" })
    assert.are.equal(0, code, err)
    assert.are.equal(3, #cli.jsonl(out))
    assert.matches("list: 3 jobs", err, 1, true)
    code, out, err = cli.run(emu, { "list", "--queue", Q, "--status", "succeeded" })
    assert.are.equal(0, code, err)
    local got = {}
    for _, j in ipairs(cli.jsonl(out)) do
      assert.are.equal("succeeded", j.status)
      got[j.id] = true
    end
    assert.are.same({ [ids[2]] = true, [ids[5]] = true }, got)
    code, _, err = cli.run(emu, { "list", "--queue", Q, "--status", "done" })
    assert.are.equal(2, code)
    assert.matches("--status must be one of pending, running, succeeded, cancelled, failed", err, 1, true)
    code, _, err = cli.run(emu, { "list", "--queue", Q, "--limit", "0" })
    assert.are.equal(2, code)
    assert.matches("--limit must be an integer of 1 or more", err, 1, true)
    -- -o table: a header and a row per job, columns lined up
    code, out, err = cli.run(emu, { "list", "--queue", Q, "-o", "table", "--status", "succeeded" })
    assert.are.equal(0, code, err)
    local rows = {}
    for l in out:gmatch("[^\n]+") do rows[#rows + 1] = l end
    assert.are.equal(3, #rows)
    assert.matches("^ID +STATUS +CREATED +UPDATED$", rows[1])
    for i = 2, 3 do
      local id, status = rows[i]:match("^(%S+) +(%S+) +%S+ +%S+$")
      assert.is_true(got[id], rows[i])
      assert.are.equal("succeeded", status)
      assert.are.equal(rows[1]:find("STATUS", 1, true), rows[i]:find("succeeded", 1, true))
    end
    -- on a terminal, a table without asking; --output json there gives JSON lines
    local tcode, shown = on_terminal(emu, { "list", "--queue", Q, "--limit", "2", "-q" })
    assert.are.equal(0, tcode, shown)
    assert.matches("^ID +STATUS +CREATED +UPDATED\n%S+ +%l+ +%S+ +%S+\n%S+ +%l+ +%S+ +%S+\n$", shown)
    tcode, shown = on_terminal(emu, { "list", "--queue", Q, "--limit", "1", "-q", "--output", "json" })
    assert.are.equal(0, tcode, shown)
    assert.is_string(cli.jsonl(shown)[1].status)   -- a JSON line, not a table
    -- get and queues
    code, out, err = cli.run(emu, { "get", "--queue", Q, "-o", "table", ids[2], ids[3] })
    assert.are.equal(0, code, err)
    assert.matches("^ID +STATUS +CREATED +UPDATED\n" .. ids[2]:gsub("%-", "%%-") .. " +succeeded .*\n" ..
      ids[3]:gsub("%-", "%%-") .. " +pending .*\n$", out)
    code, out, err = cli.run(emu, { "queues", "create", "tabled", "--display-name", "Tabled queue", "-o", "table" })
    assert.are.equal(0, code, err)
    assert.matches("^NAME +DISPLAY NAME +PENDING +CREATED\ntabled +Tabled queue +0 +%S+\n$", out)
    tcode, shown = on_terminal(emu, { "queues" })
    assert.are.equal(0, tcode, shown)
    assert.matches("^NAME +DISPLAY NAME +PENDING +CREATED\n", shown)
    assert.matches("\n" .. Q:gsub("%-", "%%-") .. " +%S+ +5 +%S+\n", shown)   -- 7 jobs, 2 ended
  end)

  it("--summary-json: the summary as one JSON object on stderr, even with -q", function()
    emu = cli.start()
    local f = cli.write_lines { '{"input": 1}', "", '{"input": 2}', "[1]" }
    local code, out, err = cli.run(emu, { "submit", "-q", "--summary-json", "--queue", Q,
      "--no-journal", "--rate-limit", "none", f })
    assert.are.equal(1, code, err)
    assert.are.equal(2, #cli.jsonl(out))
    local last = err:match("([^\n]+)\n$")
    local s = assert(helpers.json.decode(last))
    assert.are.equal("submit", s.command)
    assert.are.same({ 4, 2, 1, 1, 0 }, { s.lines, s.created, s.failed, s.blank, s.not_tried })
    assert.is_number(s.seconds)
    code, _, err = cli.run(emu, { "list", "--queue", Q, "--summary-json" })
    assert.are.equal(0, code, err)
    assert.are.same({ command = "list", jobs = 2 }, helpers.json.decode(err:match("([^\n]+)\n$")))
    code, _, err = cli.run(emu, { "submit", "--check", "--summary-json", f })
    assert.are.equal(1, code)
    assert.are.same({ command = "submit", check = true, lines = 4, jobs = 2, bad = 1 },
      helpers.json.decode(err:match("([^\n]+)\n$")))
  end)

  it("a table shows no terminal control a server sent, lines up characters, and cuts a long " ..
     "cell on a terminal", function()
    local C1, RLO, LRI, PDI = "\194\155", "\226\128\174", "\226\129\166", "\226\129\169"
    local hostile = "Q" .. C1 .. "2J\27[2Jx" .. RLO .. "evil" .. LRI .. "y" .. PDI .. "\194\133z"
    local lines = tables.lines(tables.JOB, {
      { id = hostile, status = "\230\188\162\229\173\151", create_time = "t" },
      { id = "plain-id", status = "pending", create_time = "t" } })
    local all = table.concat(lines, "\n")
    for _, bad in ipairs { C1, RLO, LRI, PDI, "\194\133", "\27" } do
      assert.is_nil(all:find(bad, 1, true), ("%q"):format(bad))
    end
    assert.truthy(lines[2]:find("Q" .. tables.PLACEHOLDER .. "2J [2Jx" .. tables.PLACEHOLDER .. "evil", 1, true))
    -- the columns line up by characters: STATUS starts at the same character on each line
    local at = {}
    for i, l in ipairs(lines) do
      local a = l:find(i == 1 and "STATUS" or (i == 2 and "\230\188\162" or "pending"), 1, true)
      at[i] = tables.chars(l:sub(1, a - 1))
    end
    assert.are.same({ at[1], at[1] }, { at[2], at[3] })
    -- a long cell: whole in a file, cut on a terminal
    local long = ("x"):rep(300)
    assert.are.equal(300, #tables.lines(tables.JOB, { { id = long } })[2]:match("^(x+)"))
    local srv = scripted.start { default = { status = 200,
      body = '{"items":[{"name":"q1","display_name":"' .. long .. '\\u009b2J\\u202e","current_queue_length":3,' ..
        '"create_time":"t"}]}' } }
    local base = "http://127.0.0.1:" .. srv.port .. "/api/public"
    local code, shown = on_terminal(nil, { "queues" }, { SALAD_BASE_URL = base })
    local code2, out, err = cli.run(nil, { "queues", "-o", "table" }, { env = { SALAD_BASE_URL = base } })
    srv.stop()
    assert.are.equal(0, code, shown)
    local row = shown:match("\n(q1 [^\n]*)")
    assert.truthy(row, shown)
    assert.truthy(row:find(" " .. ("x"):rep(tables.MAX_CELL - 1) .. "\226\128\166 ", 1, true), row)
    assert.are.equal(0, code2, err)
    assert.truthy(out:find(" " .. long .. tables.PLACEHOLDER .. "2J" .. tables.PLACEHOLDER .. " ", 1, true), out)
  end)

  it("completion bash|zsh|fish: scripts of every command and option, no key in them", function()
    for _, shell in ipairs { "bash", "zsh", "fish" } do
      local code, out, err = cli.run(nil, { "completion", shell })
      assert.are.equal(0, code, err)
      assert.is_nil(out:find(cli.KEY, 1, true))
      for _, word in ipairs { "submit", "queues", "completion", "max-queue-length", "status",
                              "output", "profile", "summary-json" } do
        assert.truthy(out:find(word, 1, true), shell .. " lacks " .. word)
      end
    end
    local code, out = cli.run(nil, { "completion", "bash" })
    assert.are.equal(0, code)
    local script = cli.tmp()
    helpers.write_file(script, out)
    -- bash completes a command's options and --output's values
    local ok, got = helpers.run({ "bash", "-c", ". " .. q(script) ..
      "; COMP_WORDS=(salad-jobs list --st); COMP_CWORD=2; _salad-jobs; echo \"${COMPREPLY[*]}\"" ..
      "; COMP_WORDS=(salad-jobs list -o t); COMP_CWORD=3; _salad-jobs; echo \"${COMPREPLY[*]}\"" },
      { plain = true })
    assert.is_true(ok, got)
    assert.are.equal("--status\ntable\n", got)
    -- under `set -u`: completion and help complete their word; a command's options once each
    ok, got = helpers.run({ "bash", "-c", "set -u; . " .. q(script) ..
      '; t() { COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=(); ' ..
      '_salad-jobs; echo "${COMPREPLY[*]}"; }' ..
      "; t salad-jobs completion ''; t salad-jobs help qu; t salad-jobs list --; t salad-jobs secret --p" ..
      "; t salad-jobs re" },
      { plain = true, stderr = true })
    assert.is_true(ok, got)
    local said = {}
    for l in got:gmatch("([^\n]*)\n") do said[#said + 1] = l end
    assert.are.equal("bash zsh fish", said[1], got)
    assert.are.equal("queues", said[2], got)
    local seen = {}
    for w in said[3]:gmatch("%S+") do
      assert.is_nil(seen[w], "twice: " .. w)
      seen[w] = true
    end
    assert.truthy(seen["--status"] and seen["--organization"], said[3])
    assert.are.equal("--profile", said[4], got)   -- secret takes no --project
    assert.are.equal("results resubmit", said[5], got)   -- (no command yet: cmd was unbound)
    local _, fish = cli.run(nil, { "completion", "fish" })
    assert.truthy(fish:find("using_command completion' -xa 'bash zsh fish'", 1, true))
    local c2, _, err = cli.run(nil, { "completion", "tcsh" })
    assert.are.equal(2, c2)
    assert.matches("completion takes one shell: bash, zsh or fish", err, 1, true)
  end)

  describe("the config file's profiles", function()
    local function config(dir, text, mode)
      os.execute("mkdir -p " .. q(dir .. "/salad-jobs"))
      local path = dir .. "/salad-jobs/config.ini"
      helpers.write_file(path, text)
      assert(helpers.shell("chmod " .. mode .. " " .. q(path)))
      return path
    end
    -- the environment of a user with no SALAD_* settings: all from the profile
    local function bare(dir, extra)
      local e = { XDG_CONFIG_HOME = dir, HOME = dir, SALAD_API_KEY = false, SALAD_BASE_URL = false,
        SALAD_ORGANIZATION = false, SALAD_PROJECT = false }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    it("gives organization, project, base URL, key file and rate limit; --profile and " ..
       "SALAD_PROFILE choose; the environment and flags override it", function()
      emu = cli.start()
      assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
      local dir = tmpdir()
      local keyfile = dir .. "/key"   -- given as ~/key, HOME being dir
      local closed = "http://127.0.0.1:" .. helpers.free_port() .. "/api/public"
      helpers.write_file(keyfile, cli.KEY .. "\n")
      assert(helpers.shell("chmod 600 " .. q(keyfile)))   -- a key file others may read is refused
      config(dir, table.concat({
        "; salad-jobs profiles",
        "[default]",
        "organization = " .. cli.ORG,
        "project = " .. cli.PROJ,
        "base_url = " .. closed,
        "api_key_file = " .. keyfile,
        "",
        "[profile dev]",
        "organization = " .. cli.ORG,
        "project = " .. cli.PROJ,
        "base_url = " .. emu.url,
        "api_key_file = ~/key",
        "rate_limit = none",
      }, "\n") .. "\n", "644")
      -- [default]: its base URL, where nothing listens
      local code, _, err = cli.run(emu, { "--retries", "0", "queues" }, { env = bare(dir) })
      assert.are.equal(1, code)
      assert.matches("Failed to connect", err, 1, true)
      for _, how in ipairs {
        { { "--profile", "dev", "queues" }, {} },
        { { "queues", "--profile=dev" }, {} },
        { { "queues" }, { SALAD_PROFILE = "dev" } },
        -- the environment over [default]
        { { "queues" }, { SALAD_BASE_URL = emu.url } },
        -- flags over the environment and the profile
        { { "queues", "--organization", cli.ORG, "--project", cli.PROJ, "--profile", "dev" },
          { SALAD_ORGANIZATION = "wrong-org", SALAD_PROJECT = "wrong-proj" } },
        { { "queues", "--base-url", emu.url }, { SALAD_BASE_URL = closed } },
      } do
        local out
        code, out, err = cli.run(emu, how[1], { env = bare(dir, how[2]) })
        assert.are.equal(0, code, table.concat(how[1], " ") .. ": " .. err)
        assert.are.equal(Q, cli.jsonl(out)[1].name)
      end
      -- a profile that is not there
      code, _, err = cli.run(emu, { "--profile", "prod", "queues" }, { env = bare(dir) })
      assert.are.equal(2, code)
      assert.matches("no profile prod (no [profile prod] section)", err, 1, true)
      code, _, err = cli.run(emu, { "queues" }, { env = bare(tmpdir(), { SALAD_PROFILE = "dev" }) })
      assert.are.equal(2, code)
      assert.matches("config: no profile dev: there is no ", err, 1, true)
      -- a profile's name that could be a key typed in the wrong place is not repeated
      code, _, err = cli.run(emu, { "queues", "--profile", cli.KEY }, { env = bare(dir) })
      assert.are.equal(2, code)
      assert.matches("no profile as given (no [profile NAME] section)", err, 1, true)
      assert.is_nil(err:find(cli.KEY, 1, true))
    end)

    it("takes a key in clear only from a file only its owner can read, and never shows it", function()
      emu = cli.start()
      assert.are.equal(0, (cli.run(emu, { "queues", "create", Q })))
      local dir = tmpdir()
      local text = table.concat({ "[default]", "organization = " .. cli.ORG, "project = " .. cli.PROJ,
        "base_url = " .. emu.url, "api_key = " .. cli.KEY }, "\n") .. "\n"
      for _, mode in ipairs { "644", "640", "604" } do
        config(dir, text, mode)
        local code, out, err = cli.run(emu, { "queues" }, { env = bare(dir) })
        assert.are.equal(2, code, mode)
        assert.are.equal("", out)
        assert.matches("holds api_key but others can read it (chmod 600 it", err, 1, true)
        assert.is_nil(err:find(cli.KEY, 1, true))
      end
      -- a key in another profile than the one used: refused too
      config(dir, "[default]\nproject = p1\n[profile other]\napi_key = " .. cli.KEY .. "\n", "644")
      local c0, _, e0 = cli.run(emu, { "queues" }, { env = bare(dir, { SALAD_API_KEY = cli.KEY }) })
      assert.are.equal(2, c0)
      assert.matches("holds api_key but others can read it", e0, 1, true)
      assert.is_nil(e0:find(cli.KEY, 1, true))
      config(dir, text, "600")
      local code, out, err = cli.run(emu, { "-v", "queues" }, { env = bare(dir) })
      assert.are.equal(0, code, err)
      assert.are.equal(Q, cli.jsonl(out)[1].name)
      assert.is_nil(err:find(cli.KEY, 1, true))
      -- SALAD_API_KEY over the profile's key
      code, _, err = cli.run(emu, { "queues" }, { env = bare(dir, { SALAD_API_KEY = "sk-other-key-123456" }) })
      assert.are.equal(1, code)
      assert.matches("401", err)
    end)

    it("refuses a line it would not read, a setting it does not know and a bad rate limit, " ..
       "quoting no value", function()
      local dir = tmpdir()
      for _, c in ipairs {
        { "[default]\nbase-url = sk-secret-value-1\n", "line 2: not a [section]" },
        { "[default]\nsk-secret-value-1\n", "line 2: not a [section]" },
        { "[default]\nendpoint = sk-secret-value-1\n", "[default]: endpoint is not a setting" },
        { "[default]\nrate_limit = sk-secret-value-1\n", "[default]: rate_limit must be a number of requests a minute" },
        { "[default]\nsk_secret_value_1234567 = 1\n", "[default]: a name is not a setting" },
      } do
        config(dir, c[1], "600")
        local code, out, err = cli.run(nil, { "queues" }, { env = bare(dir) })
        assert.are.equal(2, code, c[1])
        assert.are.equal("", out)
        assert.matches(c[2], err, 1, true)
        assert.is_nil(err:find("sk-secret", 1, true), err)
      end
    end)
  end)

  it("the man page is made from the help texts, reads with man -l, and make install installs it",
    function()
    local dir = tmpdir()
    local build = os.getenv("QJ_BUILD") or "build"
    -- (make, the core's build and man run without `make check`'s sanitizer settings: they are
    -- not instrumented; the page is made with the plain build's core)
    local made = (build:sub(1, 1) == "/" and build or (root .. "/" .. build)) .. "/salad-jobs.1"
    helpers.shell("rm -f " .. q(made))   -- made again here, with a key set
    local ok, out = helpers.shell(("cd %s && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL SALAD_API_KEY=%s " ..
      "SOURCE_DATE_EPOCH=86400 " ..
      "make -s install-man LUA=%s BUILD=%s PREFIX=/usr DESTDIR=%s"):format(q(root), q(cli.KEY),
      q(helpers.LUA), q(build), q(dir)))
    assert.is_true(ok, out)
    local page = dir .. "/usr/share/man/man1/salad-jobs.1"
    local shown
    ok, shown = helpers.run("MANWIDTH=200 man -l " .. q(page) .. " 2>&1 | col -b",
      { env = { PAGER = "cat" }, plain = true })
    assert.is_true(ok, shown)
    assert.matches("SALAD%-JOBS%(1%)", shown)
    local Cli = require "queue_jobs.cli"
    for _, c in ipairs(Cli.COMMANDS) do
      if c[2] then
        assert.truthy(shown:find("usage: salad-jobs " .. c[1], 1, true), c[1])
        for name in pairs(Cli.command(c[1]).options) do
          assert.truthy(shown:find("--" .. name, 1, true), c[1] .. " --" .. name)
        end
      end
    end
    for _, s in ipairs { "--summary-json", "-V, --version", "143 terminated", "config.ini", "SALAD_PROFILE" } do
      assert.truthy(shown:find(s, 1, true), s)
    end
    assert.is_nil(shown:find(cli.KEY, 1, true))
    -- its date is SOURCE_DATE_EPOCH's (the same build after build); it reads in 80 columns;
    -- it names no file that is not installed
    assert.matches('^%.TH SALAD\\%-JOBS 1 "1970%-01%-02" ', helpers.read_file(page))
    ok, shown = helpers.run("MANWIDTH=80 man -l " .. q(page) .. " 2>&1 | col -bx",
      { env = { PAGER = "cat" }, plain = true })
    assert.is_true(ok, shown)
    for line in shown:gmatch("[^\n]+") do
      assert.is_true(#line:gsub("[\128-\191]", "") <= 80, line)
    end
    assert.is_nil(shown:find("SEE ALSO", 1, true))
  end)
end)

-- docs/cli.md's ```console blocks: each "$ " line run in order (sh, salad-jobs on PATH), what
-- the others show compared with what it printed: the same cells, an id or a time standing
-- for any id or time, and the columns of a table lined up.
describe("docs/cli.md's console examples", function()
  local ID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
  local TIME = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d[%d.]*[Z+-][%d:]*$"

  -- The cells of a line (two spaces or more end one: a cell may hold one space) and where
  -- each starts.
  local function cells(line)
    local out, starts, at = {}, {}, 1
    while true do
      local a = line:find("%S", at)
      if not a then break end
      local b = line:find("  ", a, true) or #line + 1
      out[#out + 1], starts[#starts + 1] = line:sub(a, b - 1), a
      at = b
    end
    return out, starts
  end

  local function same_line(want, got, where)
    local w = cells(want)
    local g, gs = cells(got)
    assert.are.equal(#w, #g, where .. ": " .. got)
    for i = 1, #w do
      if w[i]:find(ID) then assert.matches(ID, g[i])
      elseif w[i]:find(TIME) then assert.matches(TIME, g[i])
      else assert.are.equal(w[i], g[i], where) end
    end
    return gs
  end

  after_each(function() cli.cleanup() rm_dirs() end)

  it("run as written", function()
    local emu = cli.start()
    local dir = tmpdir()
    helpers.write_file(dir .. "/salad-jobs", ("#!/bin/sh\nexec %s %s --rate-limit none \"$@\"\n")
      :format(q(helpers.LUA), q(cli.BIN)))
    assert(helpers.shell("chmod +x " .. q(dir .. "/salad-jobs")))
    local text = assert(helpers.read_file(root .. "/docs/cli.md"))
    local n = 0
    for block in text:gmatch("\n```console\n(.-)\n```\n") do
      local steps = {}
      for line in (block .. "\n"):gmatch("([^\n]*)\n") do
        if line:sub(1, 2) == "$ " then
          steps[#steps + 1] = { cmd = line:sub(3), want = {} }
        else
          table.insert(steps[#steps].want, line)
        end
      end
      for _, st in ipairs(steps) do
        n = n + 1
        local ok, out, code = helpers.run("cd " .. q(dir) .. " && " .. st.cmd,
          { env = cli.env(emu, { PATH = dir .. ":" .. os.getenv("PATH") }), stderr = true })
        assert.is_true(ok, st.cmd .. ": exit " .. tostring(code) .. ": " .. out)
        local got = {}
        for l in out:gmatch("[^\n]+") do got[#got + 1] = l end
        assert.are.equal(#st.want, #got, st.cmd .. ":\n" .. out)
        local header   -- a table's rows: lined up under its header
        for i, want in ipairs(st.want) do
          local starts = same_line(want, got[i], st.cmd)
          if i == 1 then header = starts
          elseif #starts == #header then assert.are.same(header, starts, st.cmd .. ": columns") end
        end
      end
    end
    assert.is_true(n >= 3, "the console examples")
    assert.are.equal(0, emu:stop(), emu.stderr)
  end)
end)
