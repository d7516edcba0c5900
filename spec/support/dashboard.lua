--- The emulator's dashboard in headless Chromium (Debian's chromium package, which `make deps`
-- installs): the scene spec/emulator_ui_spec.lua checks and `make screenshots` photographs
-- (tools/dashboard_screenshot.lua), and the runs of Chromium.
--
--   local dashboard = require "support.dashboard"
--   local scene = dashboard.scene()     -- an emulator with a worker and webhooks, jobs run
--   local html = dashboard.dom(scene.emu.root .. "/_emulator/ui#queue=" .. dashboard.QUEUE)
--   dashboard.screenshot(url, "docs/images/dashboard.png")
--   scene.stop()
local helpers = require "support.helpers"
local scripted = require "support.scripted"

local M = {}

M.QUEUE = "acme-corp/dev-env/render"
M.JOBS = "/organizations/acme-corp/projects/dev-env/queues/render/jobs"
-- A key and a secret easy to find, so that a leak of either is found.
M.API_KEY = "dash-key-never-on-the-page-7f3a9c"
M.SECRET = "S3cretNeverOnThePageNeverInItsData0123456789"
M.SCRIPT = "<script>alert(1)</script><img src=x onerror=alert(2)>"

--- chromium() -> the path of the chromium binary, or raises saying how to get it.
function M.chromium()
  local p = os.getenv("CHROMIUM")
  if p and p ~= "" then return p end
  p = helpers.find_exe("chromium", { "/usr/bin/chromium", "/usr/local/bin/chromium" })
  if p then return p end
  error("headless Chromium is needed and was not found: `make deps` installs Debian's " ..
    "chromium package (tools/deps.sh), or set CHROMIUM to a chromium binary", 0)
end

-- Starts headless Chromium on url with the extra flags; returns a function that waits for
-- its end and returns its stdout. A profile of its own in a temporary directory, removed
-- after; killed after 120 s. Virtual time: the page's timers run as fast as its requests
-- are answered, for `budget` ms of the page's time (default 5000: five polls).
local function start(url, flags, budget)
  local _, made = helpers.shell { "mktemp", "-d" }
  local dir = assert(made:match("^(/%S+)"), "mktemp -d failed")
  local argv = { "timeout", "-s", "KILL", "120", M.chromium(), "--headless", "--disable-gpu",
    "--no-sandbox", "--no-first-run", "--disable-extensions", "--disable-background-networking",
    "--disable-sync", "--disable-component-update", "--user-data-dir=" .. dir, "--virtual-time-budget=" .. (budget or 5000) }
  for _, f in ipairs(flags) do argv[#argv + 1] = f end
  argv[#argv + 1] = url
  -- (plain: without the sanitizer settings of make check, which Chromium would inherit)
  local p = assert(io.popen(helpers.command(argv, { plain = true }) .. " 2>/dev/null", "r"))
  return function()
    local out = p:read("*a")   -- (5.1 knows only "*a")
    local ok = p:close()
    helpers.shell { "rm", "-rf", dir }
    assert(ok, "chromium failed on " .. url)
    return out
  end
end

local function run(url, flags)
  return start(url, flags)()
end

--- dom_later(url, budget) -> a function that returns the DOM: Chromium runs the page for
-- `budget` ms of its virtual time meanwhile.
function M.dom_later(url, budget)
  return start(url, { "--dump-dom" }, budget)
end

--- dom(url [, netlog]) -> the page's DOM once its script ran (--dump-dom); with netlog, a
-- path where Chromium writes every request and response, bodies included (NetLog).
function M.dom(url, netlog)
  local flags = { "--dump-dom" }
  if netlog then
    flags[#flags + 1] = "--log-net-log=" .. netlog
    flags[#flags + 1] = "--net-log-capture-mode=Everything"
  end
  return run(url, flags)
end

--- screenshot(url, path [, width, height])
function M.screenshot(url, path, width, height)
  run(url, { "--hide-scrollbars", "--screenshot=" .. path,
    ("--window-size=%d,%d"):format(width or 1280, height or 1500) })
end

local function wait(what, fn)
  assert(helpers.wait_for(fn, 30), "the scene: " .. what)
end

--- scene() -> {emu =, ids = {failed =, succeeded =, cancelled =, script =}, worker =,
-- receiver =, stop = fn}: an emulator with one worker instance on QUEUE and webhooks to a
-- receiver, after four jobs ran: one failed after 4 attempts (its worker answered 500 and
-- 503), one succeeded (with an output holding a number beyond a double's precision), one
-- cancelled while pending, one whose input and metadata hold HTML. The receiver answers
-- its first delivery 503 and the others 200; deliveries are retried after 0.05 s.
function M.scene()
  local worker = scripted.start(function(w)
    return { { gate = w.gate, status = 500 }, { status = 500 }, { status = 503 },
      { status = 500 },
      default = { status = 200, body = '{"frames": 24, "seed": 12345678901234567890123}' } }
  end)
  local receiver = scripted.start { { status = 503 }, default = { status = 200, body = "" } }
  local emu = helpers.start_emulator { args = { "--api-key", M.API_KEY,
    "--webhook-secret", M.SECRET, "--webhook-retries", "0.05",
    "--worker", M.QUEUE .. "=" .. worker.url } }
  local hook = receiver.url:gsub("/run$", "/hook")
  local function create(body)
    local status, text = emu:request("POST", M.JOBS, { body = body })
    assert(status == 201, text)
    return helpers.decode(text).id
  end
  local ids = {}
  ids.failed = create('{"input":{"scene":"fails"},"webhook":"' .. hook .. '"}')
  wait("the worker got the first job", function() return #worker.requests() >= 1 end)
  ids.succeeded = create('{"input":{"scene":"succeeds","n":9999999999999999999},' ..
    '"metadata":{"ref":"r-1"},"webhook":"' .. hook .. '"}')
  ids.cancelled = create('{"input":{"scene":"cancelled"}}')
  ids.script = create('{"input":{"prompt":' .. helpers.json.encode(M.SCRIPT) .. '},' ..
    '"metadata":{"note":"<b>bold</b> & <i>more</i>"}}')
  local status = emu:request("DELETE", M.JOBS .. "/" .. ids.cancelled)
  assert(status == 202)
  worker.open()
  local function job(id) return helpers.decode(select(2, emu:request("GET", M.JOBS .. "/" .. id))) end
  wait("the jobs finished", function()
    return job(ids.failed).status == "failed" and job(ids.succeeded).status == "succeeded" and
      job(ids.script).status == "succeeded"
  end)
  wait("the deliveries ended", function()
    local _, log = emu:control("GET", "/_emulator/webhooks")
    if #log.deliveries < 2 then return false end
    for _, d in ipairs(log.deliveries) do
      if d.state ~= "delivered" then return false end
    end
    return true
  end)
  local scene = { emu = emu, ids = ids, worker = worker, receiver = receiver }
  function scene.stop()
    local code = emu:stop()
    worker.stop()
    receiver.stop()
    return code
  end
  return scene
end

return M
