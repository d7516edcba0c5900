-- The docs stay true to the code (docs/building.md, "The docs' examples"): every ```lua block
-- of the README and docs/*.md runs against the emulator, the links between the pages lead
-- somewhere, the README's LuaRocks command installs the module as typed, and the changelog
-- and the release rockspec name the module's version.
local compat = require "queue_jobs.compat"
local helpers = require "support.helpers"
local socket = require "socket"

local root = os.getenv("QJ_ROOT") or "."
local q = helpers.shell_quote
local read = helpers.read_file

local EXAMPLE_LIMIT = 60          -- seconds an example may run
local WORKER_STEP = 0.1           -- seconds between two rounds of the stand-in worker
-- the words a ```lua block's info string may add: no-run (compiled only), integers (runs
-- where numbers have integers, 5.3 and 5.4; compiled only on 5.1 and LuaJIT)
local FLAGS = { ["no-run"] = true, integers = true }
local INTEGERS = math.type ~= nil

-- The ```lua no-run blocks, each known here by its page and first line, with the reason it
-- does not run and the spec that runs the whole program it shows. A new one fails the spec
-- until it is listed (docs/building.md, "The docs' examples").
local NO_RUN = {
  { "docs/engine.md", 'local uv = require "luv"', "needs the luv rock, which is no dependency",
    runs_in = "spec/engine_hosts_spec.lua", program = "examples/engine_luv.lua" },
  { "docs/engine.md", 'local cqueues = require "cqueues"', "needs the cqueues rock, which is no dependency",
    runs_in = "spec/engine_hosts_spec.lua", program = "examples/engine_cqueues.lua" },
  { "docs/engine.md", "while engine:stats().tasks > 0 do",
    "a fragment: `engine` and the host's own `sleep` come from the host around it",
    runs_in = "spec/engine_spec.lua", program = "poll" },
  { "docs/engine.md", 'core.register_service("create_job", "http", function(applet)',
    "runs only inside HAProxy (its `core` and `applet`)",
    runs_in = "spec/haproxy_spec.lua", program = "examples/haproxy_engine.lua" },
  { "docs/hosts.md", "fiber.create(function()", "runs only inside Tarantool (its fiber and socket modules)",
    runs_in = "spec/tarantool_spec.lua", program = "examples/tarantool_engine.lua" },
}

--- The lines a shell command prints (raises when it fails).
local function lines_of(cmd)
  local ok, out = helpers.shell(cmd)
  assert(ok, cmd .. ": " .. out)
  local lines = {}
  for line in out:gmatch("[^\n]+") do lines[#lines + 1] = line end
  return lines
end

--- The Markdown pages: the ones at the top of the checkout and under docs/, relative paths.
local function pages()
  local list = lines_of("cd " .. q(root) .. " && ls *.md docs/*.md")
  table.sort(list)
  return list
end

--- The fenced code blocks of a Markdown text, in order: {lang =, flags = {word = true},
-- line = the line of the first line of code, text = the code}, and the lines outside them
-- (the running text). A fence is ``` or more backticks after at most 3 spaces; an opening
-- one's info string has no backtick (as in CommonMark), which keeps ```` ```lua ```` in
-- running text from opening a block.
local function code_blocks(text)
  local blocks, prose, open, n = {}, {}, nil, 0
  if text:sub(-1) ~= "\n" then text = text .. "\n" end
  for line in text:gmatch("(.-)\n") do
    n = n + 1
    if open then
      local fence = line:match("^ ? ? ?(```+)%s*$")
      if fence and #fence >= #open.fence then
        open.text = table.concat(open.lines, "\n") .. "\n"
        blocks[#blocks + 1], open = open, nil
      else
        open.lines[#open.lines + 1] = line:sub(1, #open.indent):find("^ *$") and
          line:sub(#open.indent + 1) or line
      end
    else
      local indent, fence, info = line:match("^( ? ? ?)(```+)([^`]*)$")
      if fence then
        local words = {}
        for w in info:gmatch("%S+") do words[#words + 1] = w end
        local flags = {}
        for i = 2, #words do flags[words[i]] = true end
        open = { lang = words[1] or "", flags = flags, line = n + 1, fence = fence,
          indent = indent, lines = {} }
      else
        prose[#prose + 1] = line
      end
    end
  end
  assert(not open, "a code block opened on line " .. (open and open.line - 1 or 0) .. " is never closed")
  return blocks, prose
end

--- Every ```lua block of every page: {page =, line =, text =, flags =}.
local function lua_examples()
  local out = {}
  for _, page in ipairs(pages()) do
    for _, b in ipairs(code_blocks(assert(read(root .. "/" .. page), page))) do
      if b.lang == "lua" then
        b.page = page
        out[#out + 1] = b
      end
    end
  end
  return out
end

--- The anchor GitHub gives a heading: lower case, punctuation out but - and _, spaces to -.
local function slug(heading)
  local s = heading:gsub("`", ""):lower():gsub("[^%w%s_-]", ""):gsub("%s", "-")
  return s
end

--- The anchors of a page's headings (those outside code blocks), as a set.
local function anchors(text)
  local set, seen = {}, {}
  for _, line in ipairs(select(2, code_blocks(text))) do
    local h = line:match("^#+%s+(.-)%s*$")
    if h then
      local s = slug(h)
      if seen[s] then s, seen[s] = s .. "-" .. seen[s], seen[s] + 1 else seen[s] = 1 end
      set[s] = true
    end
  end
  return set
end

--- The jobs paths (under the API's URL) of the queues an example names, under its
-- organization_name and project_name, or acme-corp and dev-env when it names none.
local function queues_of(text)
  local org = text:match('organization_name%s*=%s*"([%w-]+)"') or "acme-corp"
  local project = text:match('project_name%s*=%s*"([%w-]+)"') or "dev-env"
  local list, seen = {}, {}
  for queue in text:gmatch('queue_name%s*=%s*"([%w-]+)"') do
    if not seen[queue] then
      seen[queue] = true
      list[#list + 1] = ("/organizations/%s/projects/%s/queues/%s/jobs"):format(org, project, queue)
    end
  end
  return list
end

--- One round of the stand-in for SaladCloud's workers: every pending job of the queues is
-- set to succeeded through the emulator's control API.
local function work(emu, queues)
  for _, jobs in ipairs(queues) do
    local status, body = emu:request("GET", jobs .. "?page_size=100")
    if status == 200 then
      for _, job in ipairs(helpers.decode(body).items) do
        if job.status == "pending" then
          emu:set_status(job.id, "succeeded", { note = "run by the docs spec's stand-in worker" })
        end
      end
    end
  end
end

--- The sample output a block shows: {[line of the block] = what it prints}, from its lines
-- `print(...)   --> text`; nil and why when such a line is not a print.
local function samples_of(b)
  local samples, i = {}, 0
  for line in b.text:gmatch("([^\n]*)\n") do
    i = i + 1
    local shown = line:match("%-%->%s*(.-)%s*$")
    if shown then
      if not line:find("^%s*print%(") then
        return nil, ("%s:%d: `--> ...` follows a line that is not a print"):format(b.page, b.line + i - 1)
      end
      samples[i] = shown
    end
  end
  return samples
end

--- The pattern of a sample's text, white space folded: each "..." stands for what was left
-- out, the whole word when it ends an id's start (`5d6c...`, `5d6c8a1e-...`), else any text
-- (`{...}`, `job ... is`).
local function sample_pattern(shown)
  local function esc(x) return (x:gsub("%p", "%%%0")) end
  local pat, at = "", 1
  while true do
    local a, e = shown:find("...", at, true)
    if not a then return "^" .. pat .. esc(shown:sub(at)) .. "$" end
    local piece = shown:sub(at, a - 1)
    local head, id = piece:match("^(.-)(%x[%x-]*)$")
    if id and (head == "" or head:find("%s$")) then
      pat = pat .. esc(head) .. "%S+"
    else
      pat = pat .. esc(piece) .. ".-"
    end
    at = e + 1
  end
end

local function folded(x) return (x:gsub("%s+", " "):gsub("^ ", ""):gsub(" $", "")) end

--- sample_matches(shown, printed) -> whether a line printed is the sample's text (a note in
-- parentheses that ends the sample, "(one connection)", may be missing from the output).
local function sample_matches(shown, printed)
  shown, printed = folded(shown), folded(printed)
  if printed:find(sample_pattern(shown)) then return true end
  local bare = shown:match("^(.-) %b()$")
  return bare ~= nil and printed:find(sample_pattern(bare)) ~= nil
end

-- Runs on the block's first line (a blank one above the code): print for the lines with a
-- sample, which also writes "line<TAB>text" to $QJ_DOCS_SAMPLES.
local SAMPLE_PRELUDE = 'local __sample do local f = assert(io.open(os.getenv("QJ_DOCS_SAMPLES"), "w")) ' ..
  'function __sample(n, ...) local t = {} for k = 1, select("#", ...) do t[k] = tostring((select(k, ...))) end ' ..
  'local s = table.concat(t, "\\t") print(s) f:write(n, "\\t", (s:gsub("\\n", " ")), "\\n") f:flush() end end'

--- The steps of a shell session shown in a ```sh block: "$ command" (continued on the lines
-- after a trailing backslash), then what it printed up to the next command, the blank lines
-- that end it left out: {cmd =, out =}.
local function session_of(text)
  local lines, steps, cur, i = {}, {}, nil, 1
  for line in text:gmatch("([^\n]*)\n") do lines[#lines + 1] = line end
  while i <= #lines do
    local cmd = lines[i]:match("^%$ (.*)$")
    if cmd then
      while cmd:sub(-1) == "\\" and lines[i + 1] do
        i = i + 1
        cmd = cmd .. "\n" .. lines[i]
      end
      cur = { cmd = cmd, out = {} }
      steps[#steps + 1] = cur
    elseif cur then
      cur.out[#cur.out + 1] = lines[i]
    end
    i = i + 1
  end
  for _, step in ipairs(steps) do
    while step.out[#step.out] == "" do step.out[#step.out] = nil end
    step.out = table.concat(step.out, "\n")
  end
  return steps
end

local UUID = ("%x"):rep(8) .. "%-" .. ("%x"):rep(4) .. "%-" .. ("%x"):rep(4) .. "%-" .. ("%x"):rep(4) ..
  "%-" .. ("%x"):rep(12)

--- A session's output with what changes from run to run as placeholders (dates, times, the
-- webhook secret made at start), each line that is a JSON object decoded (its members may
-- come in any order): a list of lines and values.
local function session_lines(text)
  text = text:gsub("\r", ""):gsub("%s+$", ""):gsub("\nDate: [^\n]+", "\nDate: <date>"):gsub("^Date: [^\n]+", "Date: <date>")
    :gsub("%d%d%d%d%-%d%d%-%d%dT[%d:.]+%+00:00", "<time>"):gsub('"secret_key":"[^"]*"', '"secret_key":"<secret>"')
  local out = {}
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    out[#out + 1] = line:find("^{") and helpers.canon(helpers.decode(line)) or line
  end
  return out
end

local tmpdir

--- Runs an example (a block of code_blocks) against the emulator: true, or false and what
-- went wrong with everything the example printed. The script keeps the block's lines where
-- they are in its page (blank lines above it), so an error names the page's own line.
local function run_example_once(emu, b, limit)
  local path = tmpdir .. "/" .. b.page
  helpers.shell({ "mkdir", "-p", (path:match("^(.*)/")) })
  local text, i = b.text, 0
  if b.samples then   -- each line with a sample prints through __sample, which records it
    text = text:gsub("([^\n]*)\n", function(line)
      i = i + 1
      return (b.samples[i] and line:gsub("print%(", "__sample(" .. i .. ", ", 1) or line) .. "\n"
    end)
  end
  helpers.write_file(path, (b.samples and SAMPLE_PRELUDE or "") .. ("\n"):rep(b.line - 1) .. text)
  local out, recorded = path .. ".out", path .. ".samples"
  os.remove(recorded)
  emu:reset()
  local p = helpers.spawn {
    argv = { helpers.LUA, path },
    env = { SALAD_BASE_URL = emu.url, SALAD_API_KEY = emu.api_key, LUA_PATH = package.path,
      LUA_CPATH = package.cpath, QJ_DOCS_SAMPLES = recorded },
    stdout = out, stderr = out,
  }
  local queues = b.text:find(":wait", 1, true) and queues_of(b.text) or {}
  local deadline = socket.gettime() + (limit or EXAMPLE_LIMIT)
  while p:alive() and socket.gettime() < deadline do
    work(emu, queues)
    socket.sleep(WORKER_STEP)
  end
  local timed_out = p:alive()
  local code = timed_out and p:stop("KILL") or p:wait()
  local printed = read(out) or ""
  os.remove(out)
  if timed_out then
    return false, ("still running after %d s; it printed:\n%s"):format(limit or EXAMPLE_LIMIT, printed)
  end
  if code ~= 0 then return false, ("exit status %s; it printed:\n%s"):format(tostring(code), printed) end
  for n, got in (read(recorded) or ""):gmatch("(%d+)\t([^\n]*)\n") do
    local shown = b.samples[tonumber(n)]
    if not sample_matches(shown, got) then
      return false, ("%s:%d prints %q where the page shows %q"):format(b.page, b.line + n - 1, got, shown)
    end
  end
  os.remove(recorded)
  return true, printed
end

local function run_example(emu, b, limit)
  local ok, printed = run_example_once(emu, b, limit)
  if not ok and helpers.lsan_tracer_crash(printed) then   -- once more: see helpers
    ok, printed = run_example_once(emu, b, limit)
  end
  return ok, printed
end

describe("the docs", function()
  local emu

  lazy_setup(function()
    local ok, dir = helpers.shell("mktemp -d")
    tmpdir = assert(ok and dir:match("^(/%S+)"), "mktemp -d failed")
    emu = helpers.start_emulator()
  end)

  lazy_teardown(function()
    if emu then emu:stop() end
    if tmpdir then helpers.shell({ "rm", "-rf", tmpdir }) end
  end)

  describe("the runner of the examples", function()
    it("finds the blocks and their info strings, not fences quoted in running text", function()
      local blocks = code_blocks(table.concat({
        "Every ```` ```lua ```` block runs;",
        "  ```` ```lua no-run ```` does not.",
        "```lua", "print(1)", "```",
        "- a list item:", "  ```lua no-run", "  local x = 1", "  ```",
        "````sh", "```", "````", "" }, "\n"))
      assert.equal(3, #blocks)
      assert.same({ "lua", 4, "print(1)\n" }, { blocks[1].lang, blocks[1].line, blocks[1].text })
      assert.same({ "lua", true, "local x = 1\n" }, { blocks[2].lang, blocks[2].flags["no-run"], blocks[2].text })
      assert.same({ "sh", "```\n" }, { blocks[3].lang, blocks[3].text })
    end)

    it("fails an example that raises, naming the page's line", function()
      local ok, why = run_example(emu, { page = "broken-page", line = 7,
        text = "local x = 1\nassert(x == 2, 'x is not 2')\n" })
      assert.is_false(ok)
      assert.matches("broken%-page:8: x is not 2", why)
    end)

    it("checks what an example prints against its `-->` comments, ids and ... left out", function()
      local b = { page = "sample-page", line = 3, text = table.concat({
        'print("job", "5d6c8a1e-1b2c-4d3e-8f90-a1b2c3d4e5f6", 2)   --> job 5d6c... 2',
        'if false then',
        '  print("never")   --> anything at all (a branch not taken is not checked)',
        'end',
        'print("processed 7f3a-99", "{\\"a\\": 1}")   --> processed 7f3a-... {...}',
        'print(1, 1.1)   --> 1 1.1 (a note)',
        'print("a\\tb", nil)   --> a b nil', "" }, "\n") }
      b.samples = assert(samples_of(b))
      local ok, why = run_example(emu, b)
      assert(ok, why)
      b.text = b.text:gsub("%-%-> a b nil", "--> a b false")
      b.samples = assert(samples_of(b))
      ok, why = run_example(emu, b)
      assert.is_false(ok)
      -- (5.1's %q leaves the tab as it is)
      assert.matches('sample%-page:9 prints "a\\?9?%c?b\\?9?%c?nil" where the page shows "a b false"', why)
      assert.is_nil(samples_of { page = "p", line = 1, text = "local x = 1   --> 1\n" })
    end)

    it("fails an example that runs too long", function()
      local ok, why = run_example(emu, { page = "slow-page", line = 1, text = "while true do end\n" }, 1)
      assert.is_false(ok)
      assert.matches("still running after 1 s", why)
    end)

    it("runs a waiting example's jobs to the end, as SaladCloud's workers would", function()
      local ok, printed = run_example(emu, { page = "wait-page", line = 1, text = [[
local queue_jobs = require "queue_jobs"
local c = assert(queue_jobs.client{ organization_name = "acme-corp", project_name = "dev-env" })
local job = assert(c:create{ queue_name = "fifo-queue", input = 1 })
print(assert(c:wait{ queue_name = "fifo-queue", id = job.id, timeout = 20, interval = 0.1 }).status)
]] })
      assert(ok, printed)
      assert.equal("succeeded\n", printed)
    end)
  end)

  describe("every Lua example", function()
    local examples = lua_examples()

    it("is there, and its info string says only lua and the known words", function()
      assert.is_true(#examples >= 5, "only " .. #examples .. " examples found")
      for _, b in ipairs(examples) do
        for word in pairs(b.flags) do
          assert(FLAGS[word], ("%s:%d: unknown word %q after ```lua"):format(b.page, b.line - 1, word))
        end
      end
    end)

    it("runs all but the no-run blocks listed here, each with its reason and the spec that runs its program", function()
      local listed = {}
      for _, n in ipairs(NO_RUN) do
        assert.is_true(#n[3] > 10, n[2])
        local runner = assert(read(root .. "/" .. n.runs_in), n.runs_in)
        assert.truthy(runner:find(n.program, 1, true), n.runs_in .. " does not run " .. n.program)
        listed[n[1] .. "\0" .. n[2]] = n
      end
      local seen = 0
      for _, b in ipairs(examples) do
        if b.flags["no-run"] then
          local first = b.text:match("^([^\n]*)")
          assert(listed[b.page .. "\0" .. first], ("%s:%d: a no-run block that spec/docs_spec.lua " ..
            "does not list with its reason (NO_RUN)"):format(b.page, b.line - 1))
          seen = seen + 1
        end
      end
      assert.are.equal(#NO_RUN, seen, "a block NO_RUN lists is gone, or runs now: take it out of the list")
    end)

    for _, b in ipairs(examples) do
      local where = ("%s:%d"):format(b.page, b.line - 1)
      if b.flags["no-run"] or (b.flags.integers and not INTEGERS) then
        it(where .. (b.flags.integers and " (integers)" or " (no-run)") .. " is whole Lua", function()
          assert(compat.load(b.text, "=" .. where))
        end)
      else
        it(where .. " runs, and prints what its `-->` comments show", function()
          local samples, why = samples_of(b)
          assert(samples, why)
          b.samples = next(samples) and samples or nil
          local ok
          ok, why = run_example(emu, b)
          assert(ok, where .. ": " .. tostring(why))
        end)
      end
    end
  end)

  it("docs/emulator.md's example session prints what the page shows, but for ids, dates and times", function()
    if not helpers.shell("command -v curl") then
      pending("needs curl (Debian package curl)")
      return
    end
    local text = assert(read(root .. "/docs/emulator.md"))
    local block = assert(text:match("\n## Example session\n.-\n```sh\n(.-\n)```\n"), "no example session")
    local steps = session_of(block)
    assert.is_true(#steps >= 8, #steps .. " steps")
    emu:reset()
    local host = emu.root:match("^http://(.*)$")
    local ids, vars, checked = {}, "", 0   -- ids: the page's id -> this run's
    for _, step in ipairs(steps) do
      local cmd = step.cmd:gsub("127%.0%.0%.1:8787", host)
      if cmd:find("salad%-queue%-emulator") or cmd:find("^kill ") then   -- the emulator is emu
        cmd = nil
      elseif cmd:find("^%u+=[^ ]*$") or cmd:find("^%u+=.-; %u+=") then   -- variables, for what follows
        vars = vars .. cmd:gsub(UUID, function(id) return ids[id] or id end) .. "\n"
        cmd = nil
      end
      if cmd then
        local ok, got = helpers.shell(vars .. cmd)
        assert(ok, cmd .. ": " .. got)
        -- the page's ids in order of appearance stand for this run's
        local mine = {}
        for id in got:gmatch(UUID) do mine[#mine + 1] = id end
        local k = 0
        for id in step.out:gmatch(UUID) do
          k = k + 1
          ids[id] = ids[id] or mine[k]
        end
        local want = session_lines(step.out:gsub(UUID, function(id) return ids[id] or id end))
        assert.are.same(want, session_lines(got), "$ " .. step.cmd)
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 6, checked .. " commands checked")
  end)

  it("links only to pages and headings that exist", function()
    local cache = {}
    local function anchors_of(path)
      if cache[path] == nil then
        local text = read(root .. "/" .. path)
        cache[path] = text and anchors(text) or false
      end
      return cache[path]
    end
    local checked = 0
    for _, page in ipairs(pages()) do
      -- the links of the running text: outside code blocks and inline code
      local _, prose = code_blocks(assert(read(root .. "/" .. page)))
      for i, line in ipairs(prose) do prose[i] = line:gsub("``.-``", ""):gsub("`[^`]*`", "") end
      local dir = page:match("^(.*)/") or ""
      for target in table.concat(prose, "\n"):gmatch("%]%(([^)%s]+)%)") do
        if not target:find("^%a[%w+.-]*:") then
          local file, anchor = target:match("^([^#]*)#?(.*)$")
          local path = file == "" and page or (dir ~= "" and dir .. "/" .. file or file)
          path = path:gsub("[^/]+/%.%./", "")
          local set = anchors_of(path)
          assert(set, ("%s links to %s: no such file"):format(page, target))
          if anchor ~= "" then
            assert(set[anchor], ("%s links to %s: %s has no heading %q"):format(page, target, path, anchor))
          end
          checked = checked + 1
        end
      end
    end
    assert.is_true(checked >= 10, "only " .. checked .. " links checked")
  end)

  it("has a changelog whose newest version is the module's", function()
    local text = assert(read(root .. "/CHANGELOG.md"), "no CHANGELOG.md")
    local newest = text:match("\n## %[?(%d+%.%d+%.%d+)")
    assert.equal(require("queue_jobs")._VERSION, newest)
  end)

  --- A rockspec, run as the Lua it is: its fields.
  local function rockspec(name)
    local env = {}
    local path = "rockspec/" .. name
    assert(compat.load(assert(read(root .. "/" .. path), path), "=" .. path, "t", env))()
    return env
  end

  it("the release rockspec builds what the scm one builds, from the v0.1.0 tag", function()
    local version = require("queue_jobs")._VERSION
    local scm = rockspec("saladcloud-queue-jobs-scm-1.rockspec")
    local release = rockspec("saladcloud-queue-jobs-" .. version .. "-1.rockspec")
    assert.equal(version .. "-1", release.version)
    assert.equal("v" .. version, release.source.tag)
    assert.matches("^git%+https://", release.source.url)
    for _, field in ipairs { "rockspec_format", "package", "build", "external_dependencies" } do
      assert.same(scm[field], release[field], field)
    end
    -- Lua, then what salad-jobs needs: lua-argparse, lua-inifile, LuaFileSystem (docs/cli.md)
    assert.same(scm.dependencies, release.dependencies)
    assert.matches("^lua >= 5%.%d", scm.dependencies[1])
    assert.same({ "argparse", "inifile", "luafilesystem" },
      { scm.dependencies[2]:match("^%S+"), scm.dependencies[3]:match("^%S+"), scm.dependencies[4]:match("^%S+") })
    assert.equal(4, #scm.dependencies)
  end)

  --- The README's install commands: for each ```sh block that runs `luarocks ... make` (PUC
  -- Lua's, then LuaJIT's), its lines, continuation lines joined, comments dropped.
  local function readme_commands()
    local blocks = {}
    for _, b in ipairs(code_blocks(assert(read(root .. "/README.md")))) do
      if b.lang == "sh" and b.text:find("luarocks [^\n]*make") then
        local cmds = {}
        for cmd in b.text:gsub("\\\n%s*", " "):gmatch("[^\n]+") do
          cmds[#cmds + 1] = cmd:gsub("%s+#.*$", "")
        end
        blocks[#blocks + 1] = cmds
      end
    end
    return blocks
  end

  it("installs the module as typed, and it loads from where luarocks put it", function()
    if not helpers.shell("command -v luarocks && command -v gcc") then
      pending("needs luarocks and gcc (Debian packages luarocks and gcc)")
      return
    end
    local blocks = readme_commands()
    assert.is_true(#blocks >= 2, "a luarocks make command for PUC Lua and one for LuaJIT")
    for n, cmds in ipairs(blocks) do
      local install, check = cmds[1], cmds[2]
      assert.matches("^luarocks %-%-lua%-version %d%.%d make ", install)
      local version = install:match("^luarocks %-%-lua%-version (%d%.%d)")
      local lua = install:find("LUA_INCDIR=/usr/include/luajit", 1, true) and "luajit" or "lua" .. version
      assert.equal(lua .. " -e ", check:sub(1, #lua + 4))
      -- (the build of our own Lua only: this run's interpreter loads what luarocks built)
      if lua == "luajit" and not helpers.shell("command -v luajit && test -f /usr/include/luajit-2.1/lua.h") then
        pending("needs luajit and its headers (Debian packages luajit2 and libluajit2-5.1-dev)")
        return
    end
    -- A copy of the checkout (luarocks make builds in place), and a luarocks configuration
    -- whose only tree is a temporary one: the command itself stays as the README has it.
    local copy, tree, config = tmpdir .. "/rock-src" .. n, tmpdir .. "/rock-tree" .. n, tmpdir .. "/rock-config.lua"
    lines_of(("mkdir -p %s && tar -C %s --exclude=./build --exclude=./.git -cf - . | tar -C %s -xf -")
      :format(q(copy), q(root), q(copy)))
    helpers.write_file(config, ("rocks_trees = { { name = \"docs-spec\", root = %q } }\n"):format(tree))
    local ok, out = helpers.run("cd " .. q(copy) .. " && " .. install,
      { plain = true, stderr = true, env = { LUAROCKS_CONFIG = config, LUAROCKS_CONFIG_5_4 = false,
        LUAROCKS_CONFIG_5_3 = false, LUAROCKS_CONFIG_5_1 = false } })
    assert(ok, install .. "\n" .. out)
    assert.matches("is now installed in " .. tree:gsub("%p", "%%%0"), out)
    -- the README's check, with Lua's paths on the tree alone
    local printed
    ok, printed = helpers.run(check, { plain = true, stderr = true, env = {
      LUA_PATH = ("%s/share/lua/%s/?.lua;%s/share/lua/%s/?/init.lua"):format(tree, version, tree, version),
      LUA_CPATH = ("%s/lib/lua/%s/?.so"):format(tree, version) } })
    assert(ok, check .. "\n" .. printed)
    assert.equal(require("queue_jobs")._VERSION .. "\n", printed)
    end
  end)
end)
