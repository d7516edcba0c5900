-- The emulator's dashboard, /_emulator/ui (docs/emulator.md, "The dashboard"): rendered by
-- headless Chromium after a worker and webhooks ran jobs (spec/support/dashboard.lua), its
-- answers over HTTP, and emulator/ui.lua in plain Lua with a fake host (counts through every
-- move of a job, pages of a large queue). Chromium is Debian's chromium package, which
-- `make deps` installs; without it the first describe fails and says so.
package.path = (os.getenv("QJ_ROOT") or ".") .. "/?.lua;" .. package.path

local helpers = require "support.helpers"
local dashboard = require "support.dashboard"
local scripted = require "support.scripted"
local core = require "queue_jobs.core"
local mime = require "mime"

local decode = helpers.decode

-- ---- reading the dumped DOM -----------------------------------------------------------

local function unescape_html(s)
  return (s:gsub("&lt;", "<"):gsub("&gt;", ">"):gsub("&quot;", '"'):gsub("&#39;", "'")
    :gsub("&nbsp;", "\194\160"):gsub("&amp;", "&"))
end

local function text_of(html)
  return unescape_html((html:gsub("<[^>]*>", "")))
end

-- The HTML inside the element that starts with `open` (found as plain text) up to the first
-- `close` after it.
local function inside(html, open, close)
  local _, b = html:find(open, 1, true)
  assert(b, "no " .. open .. " in the page")
  local c = html:find(close, b + 1, true)
  return html:sub(b + 1, c - 1)
end

-- The rows of a table's body: each {key = data-key, the cells' texts...}.
local function rows(html)
  local out = {}
  local body = html:match("<tbody>(.-)</tbody>") or ""
  for attrs, tr in body:gmatch("<tr([^>]*)>(.-)</tr>") do
    local row = { key = attrs:match('data%-key="([^"]*)"') }
    for td in tr:gmatch("<td[^>]*>(.-)</td>") do row[#row + 1] = text_of(td) end
    out[#out + 1] = row
  end
  return out
end

local function table_rows(html, id)
  return rows(inside(html, '<table id="' .. id .. '"', "</table>"))
end

local function element_text(html, id, tag)
  return text_of(inside(html, '<' .. tag .. ' id="' .. id .. '"', "</" .. tag .. ">"):gsub("^[^>]*>", ""))
end

local function count(s, plain)
  local n, at = 0, 1
  while true do
    local a, b = s:find(plain, at, true)
    if not a then return n end
    n, at = n + 1, b + 1
  end
end

-- Everything a NetLog file holds: its text and every "bytes" field (the bytes that went over
-- the sockets, base64) decoded; and the URLs the page itself asked for (the requests made for
-- a frame of the page's site: Chromium's own, to its update servers, are not the page's).
local function netlog_text(path, site, urls)
  local text = assert(helpers.read_file(path), "chromium wrote no NetLog")
  local out = { text }
  for b64 in text:gmatch('"bytes":"([A-Za-z0-9+/=]*)"') do out[#out + 1] = (mime.unb64(b64)) end
  for _, e in ipairs(decode(text).events) do
    local p = e.params
    if type(p) == "table" and p.url and p.network_isolation_key == site .. " " .. site then
      urls[#urls + 1] = p.url
    end
  end
  return table.concat(out, "\n")
end

describe("the dashboard in headless Chromium", function()
  local scene, dom_failed, dom_script, dom_succeeded, net
  local url, page_urls = nil, {}

  setup(function()
    dashboard.chromium()   -- raises with how to install it (make deps) when missing
    scene = dashboard.scene()
    url = scene.emu.root .. "/_emulator/ui#queue=" .. dashboard.QUEUE .. "&job="
    local netlog = os.tmpname()
    dom_failed = dashboard.dom(url .. scene.ids.failed, netlog)
    net = netlog_text(netlog, "http://127.0.0.1", page_urls)
    dom_script = dashboard.dom(url .. scene.ids.script, netlog)
    net = net .. netlog_text(netlog, "http://127.0.0.1", page_urls)
    dom_succeeded = dashboard.dom(url .. scene.ids.succeeded)
    os.remove(netlog)
  end)

  teardown(function()
    if scene then assert.are.equal(0, scene.stop()) end
  end)

  it("ran its script and shows the page as live", function()
    assert.matches("live: updated", element_text(dom_failed, "live", "span"))
  end)

  it("shows the queue's counts by status, its length and its worker", function()
    local list = table_rows(dom_failed, "queues")
    assert.are.equal(1, #list)
    local q = list[1]
    assert.are.equal(dashboard.QUEUE, q.key)
    assert.are.same({ dashboard.QUEUE, "0", "0", "2", "1", "1", "0",
      scene.worker.url .. " × 1" }, { q[1], q[2], q[3], q[4], q[5], q[6], q[7], q[8] })
  end)

  it("lists the queue's jobs newest first", function()
    local list = table_rows(dom_failed, "jobs")
    local ids = scene.ids
    assert.are.same({ ids.script, ids.cancelled, ids.succeeded, ids.failed },
      { list[1].key, list[2].key, list[3].key, list[4].key })
    assert.are.same({ "succeeded", "cancelled", "succeeded", "failed" },
      { list[1][2], list[2][2], list[3][2], list[4][2] })
    assert.are.equal("4", list[4][5])   -- attempts
  end)

  it("shows the failed job's four attempts, its events and its status", function()
    assert.are.equal("failed", element_text(dom_failed, "job-status", "span"))
    local attempts = table_rows(dom_failed, "job-attempts")
    assert.are.equal(4, #attempts)
    local statuses, outcomes = {}, {}
    for i, a in ipairs(attempts) do
      assert.are.equal(tostring(i), a[1])
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT", a[2])
      assert.matches("^%d+$", a[4])   -- ms
      statuses[i], outcomes[i] = a[3], a[5]
    end
    assert.are.same({ "500", "500", "503", "500" }, statuses)
    assert.are.same({ "rejected", "rejected", "rejected", "rejected: the job failed" }, outcomes)
    local events = {}
    for i, e in ipairs(table_rows(dom_failed, "job-events")) do events[i] = e[1] end
    assert.are.same({ "created", "started", "started", "started", "started", "failed" }, events)
  end)

  it("shows every webhook delivery with its attempts, statuses and the headers sent", function()
    -- what the receiver got, in order: the headers and bodies of every attempt
    local sent = {}
    for _, r in ipairs(scene.receiver.requests()) do
      local h = scripted.headers(r)
      sent[h["webhook-signature"]] = { id = h["webhook-id"], ts = h["webhook-timestamp"], body = r.body }
    end
    local checked = 0
    for _, case in ipairs { { dom_failed, scene.ids.failed }, { dom_succeeded, scene.ids.succeeded } } do
      local dom, id = case[1], case[2]
      local _, log = scene.emu:control("GET", "/_emulator/webhooks?job_id=" .. id)
      assert.are.equal(1, #log.deliveries)
      local d = log.deliveries[1]
      local box = inside(dom, '<div id="job-deliveries"', '<p id="job-deliveries-none"')
      assert.matches("to " .. d.url:gsub("%p", "%%%0") .. ": delivered; webhook%-id " .. d.id,
        text_of(box:match("<p>(.-)</p>")))
      local shown = rows(box)
      assert.are.equal(#d.attempts, #shown)
      for i, a in ipairs(shown) do
        assert.are.equal(tostring(d.attempts[i].status), a[3])
        local got = sent[a[6]]   -- the signature shown is one the receiver got
        assert.truthy(got, "a signature shown was never sent: " .. a[6])
        assert.are.equal(d.id, got.id)
        assert.are.equal(got.ts, a[5])
        assert.are.equal("yes", a[7])
        -- and it verifies, with the secret, as a receiver would check it
        assert.is_true(core.webhook_verify(dashboard.SECRET, got.id, got.ts, a[6], got.body, 300,
          tonumber(got.ts)))
        checked = checked + 1
      end
    end
    assert.is_true(checked >= 3)   -- 503 then 200, and 200
  end)

  it("shows the text of a job's input as text and runs none of it", function()
    local input = element_text(dom_script, "job-input", "pre")
    assert.are.equal('{\n  "prompt": ' .. core.json.encode(dashboard.SCRIPT) .. "\n}", input)
    -- as text in the DOM: escaped, never an element
    assert.truthy(dom_script:find("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;", 1, true))
    assert.is_nil(dom_script:find("<script>alert", 1, true))
    assert.is_nil(dom_script:find("<img", 1, true))
    assert.is_nil(dom_script:find("onerror=\"", 1, true))
    assert.are.equal(1, count(dom_script, "<script"))   -- the page's own, app.js
    assert.are.equal('{\n  "note": "<b>bold</b> & <i>more</i>"\n}',
      element_text(dom_script, "job-metadata", "pre"))
    assert.is_nil(dom_script:find("<b>bold", 1, true))
    -- the list's preview too
    local list = table_rows(dom_script, "jobs")
    assert.matches(dashboard.SCRIPT:gsub("%p", "%%%0"), list[1][6])
  end)

  it("pretty-prints the stored JSON with its numbers exactly as stored", function()
    assert.are.equal('{\n  "frames": 24,\n  "seed": 12345678901234567890123\n}',
      element_text(dom_script, "job-output", "pre"))
    assert.are.equal('{\n  "scene": "succeeds",\n  "n": 9999999999999999999\n}',
      element_text(dom_succeeded, "job-input", "pre"))
    assert.are.equal('{\n  "ref": "r-1"\n}', element_text(dom_succeeded, "job-metadata", "pre"))
  end)

  it("filters a queue's jobs by status", function()
    local dom = dashboard.dom(scene.emu.root .. "/_emulator/ui#queue=" .. dashboard.QUEUE ..
      "&status=failed")
    local list = table_rows(dom, "jobs")
    assert.are.equal(1, #list)
    assert.are.same({ scene.ids.failed, "failed" }, { list[1].key, list[1][2] })
    assert.are.equal("1 failed job", element_text(dom, "jobs-count", "span"))
  end)

  it("pages a queue's jobs by 50, newest first, and shows the older page", function()
    local many = "/organizations/acme-corp/projects/dev-env/queues/many/jobs"
    local ids = {}
    for i = 1, 60 do
      local status, text = scene.emu:request("POST", many, { body = '{"input":' .. i .. "}" })
      assert.are.equal(201, status, text)
      ids[i] = decode(text).id
    end
    local base = scene.emu.root .. "/_emulator/ui#queue=acme-corp/dev-env/many"
    local dom = dashboard.dom(base)
    local list = table_rows(dom, "jobs")
    assert.are.equal(50, #list)
    assert.are.same({ ids[60], ids[11] }, { list[1].key, list[50].key })
    assert.is_nil(inside(dom, '<button type="button" id="older"', "</button>"):find("disabled"))
    local _, page = scene.emu:control("GET", "/_emulator/ui/data/jobs?queue=acme-corp/dev-env/many")
    dom = dashboard.dom(base .. "&before=" .. page.next)
    list = table_rows(dom, "jobs")
    assert.are.equal(10, #list)
    assert.are.same({ ids[10], ids[1] }, { list[1].key, list[10].key })
    assert.are.equal("60 jobs (an older page)", element_text(dom, "jobs-count", "span"))
    assert.truthy(inside(dom, '<button type="button" id="older"', "</button>"):find("disabled"))
  end)

  it("shows a text over 1,000,000 characters cut, with the path of the whole text", function()
    local big = ("x"):rep(1000100)
    local status, text = scene.emu:request("POST", "/organizations/acme-corp/projects/dev-env/queues/big/jobs",
      { body = '{"input":"' .. big .. '"}' })
    assert.are.equal(201, status, text)
    local id = decode(text).id
    local dom = dashboard.dom(scene.emu.root .. "/_emulator/ui#queue=acme-corp/dev-env/big&job=" .. id)
    local shown = element_text(dom, "job-input", "pre")
    assert.are.equal('"' .. ("x"):rep(999999) .. "\n… (1000102 bytes in all; the whole text: " ..
      "/_emulator/ui/data/text?id=" .. id .. "&part=input)", shown)
  end)

  it("has neither the API key nor the webhook secret in the page or in its requests", function()
    -- the NetLog saw the page's data, bodies included: the check below is not empty
    assert.truthy(net:find("/_emulator/ui/data/job?id=" .. scene.ids.failed, 1, true))
    assert.truthy(net:find('"webhook-signature":"v1,', 1, true))
    assert.truthy(net:find('"frames": 24', 1, true))
    -- and every request of the page went to the emulator: nothing from elsewhere
    for _, u in ipairs(page_urls) do
      assert.are.equal(scene.emu.root .. "/", u:sub(1, #scene.emu.root + 1))
    end
    assert.is_true(#page_urls >= 10)
    for _, secret in ipairs { dashboard.API_KEY, dashboard.SECRET } do
      for _, where in ipairs { dom_failed, dom_script, dom_succeeded, net } do
        assert.is_nil(where:find(secret, 1, true))
        assert.is_nil(where:find(secret:sub(1, 16), 1, true))
      end
    end
  end)
end)

-- Runs body(emu) against an emulator started with opts, then stops it and raises what body
-- raised; the emulator must exit 0.
local function with_emulator(opts, body)
  local emu = helpers.start_emulator(opts)
  local ok, err = pcall(body, emu)
  local code = emu:stop()
  assert(ok, err)
  assert.are.equal(0, code)
end

describe("the dashboard and hostile texts", function()
  it("shows a worker's output nested 20,000 deep (raw or indented, never blank)", function()
    dashboard.chromium()
    local depth = 20000
    local deep = ("["):rep(depth) .. "1" .. ("]"):rep(depth)
    local worker = scripted.start { default = { status = 200, body = deep } }
    local emu = helpers.start_emulator { args = { "--worker", dashboard.QUEUE .. "=" .. worker.url } }
    local ok, err = pcall(function()
      local status, text = emu:request("POST", dashboard.JOBS, { body = '{"input":{"a":1}}' })
      assert.are.equal(201, status, text)
      local id = decode(text).id
      assert.truthy(helpers.wait_for(function()
        local _, job = emu:control("GET", "/_emulator/ui/data/job?id=" .. id)
        return job.status == "succeeded"
      end, 30), "the worker's answer was not taken")
      local html = dashboard.dom(emu.root .. "/_emulator/ui#queue=" .. dashboard.QUEUE .. "&job=" .. id)
      assert.matches("live: updated", element_text(html, "live", "span"))
      local shown = element_text(html, "job-output", "pre")
      -- the same JSON text, whitespace aside
      assert.are.equal(deep, (shown:gsub("%s", "")))
      assert.are.equal('{\n  "a": 1\n}', element_text(html, "job-input", "pre"))
    end)
    local code = emu:stop()
    worker.stop()
    assert(ok, err)
    assert.are.equal(0, code)
  end)
end)

describe("the dashboard's indenting of escaped strings", function()
  it("shows texts holding \\\", \\\\ and \\u0022 that parse back to the same values", function()
    dashboard.chromium()
    with_emulator(nil, function(emu)
      -- escapes next to what the indenting acts on (",", ":", brackets, spaces)
      local input = '{"k\\": \\"[": "a\\", \\"b\\": [1, 2]\\\\", "e": ["\\\\", "\\"", "}\\u0022, {", ' ..
        '"\\\\\\"]\\\\"], "u": "\\u0022:\\u005c\\u0022 , "}'
      local output = '[ "\\\\", {"\\u0022 :\\"": "x\\\\\\" , \\"y"}, "\\\\\\\\" ]'
      local status, text = emu:request("POST", "/organizations/a-org/projects/p-1/queues/esc/jobs",
        { body = '{"input":' .. input .. ',"metadata":{"m\\"":"\\\\\\u0022"}}' })
      assert.are.equal(201, status, text)
      local id = decode(text).id
      local c = helpers.http("POST", emu.root .. "/_emulator/jobs/" .. id .. "/status",
        { body = '{"status":"succeeded","output":' .. output .. "}" })
      assert.are.equal(200, c)
      local html = dashboard.dom(emu.root .. "/_emulator/ui#queue=a-org/p-1/esc&job=" .. id)
      assert.matches("live: updated", element_text(html, "live", "span"))
      local shown_input = element_text(html, "job-input", "pre")
      assert.truthy(shown_input:find("\n", 1, true))   -- indented, not shown as stored
      assert.are.same(decode(input), decode(shown_input))
      assert.are.same(decode(output), decode(element_text(html, "job-output", "pre")))
      assert.are.same({ ['m"'] = '\\"' }, decode(element_text(html, "job-metadata", "pre")))
    end)
  end)
end)

describe("the dashboard's list of jobs", function()
  it("marks a preview cut only when it was (a short input in UTF-8 is not)", function()
    dashboard.chromium()
    with_emulator(nil, function(emu)
      local jobs = "/organizations/a-org/projects/p-1/queues/pv/jobs"
      local long = ("é"):rep(100)
      for _, input in ipairs { '"é"', '"e"', '"' .. long .. '"' } do
        local status, text = emu:request("POST", jobs, { body = '{"input":' .. input .. "}" })
        assert.are.equal(201, status, text)
      end
      local _, page = emu:control("GET", "/_emulator/ui/data/jobs?queue=a-org/p-1/pv")
      assert.are.same({ true, false, false }, { page.items[1].preview_cut, page.items[2].preview_cut,
        page.items[3].preview_cut })
      local html = dashboard.dom(emu.root .. "/_emulator/ui#queue=a-org/p-1/pv")
      local list = table_rows(html, "jobs")
      assert.are.equal(3, #list)
      assert.are.same({ '"e"', '"é"' }, { list[2][6], list[3][6] })
      assert.are.equal(page.items[1].preview .. "…", list[1][6])
    end)
  end)
end)

describe("the dashboard with a bad address", function()
  it("shows what it can and says which parameter is bad", function()
    dashboard.chromium()
    with_emulator(nil, function(emu)
      local status, text = emu:request("POST", "/organizations/a-org/projects/p-1/queues/q-1/jobs",
        { body = '{"input":1}' })
      assert.are.equal(201, status, text)
      local id = decode(text).id
      local base = emu.root .. "/_emulator/ui#queue=a-org/p-1/"
      local cases = {
        { "Q_1", "jobs-bad", "queue must be ORG/PROJECT/QUEUE" },
        { "q-1&before=abc", "jobs-bad", "before must be a whole number" },
        { "q-1&job=nope", "job-bad", "job nope: id must be a job's UUID" },
      }
      local waits = {}
      for i, c in ipairs(cases) do waits[i] = dashboard.dom_later(base .. c[1], 3000) end
      local htmls = {}
      for i, c in ipairs(cases) do
        local html = waits[i]()
        htmls[i] = html
        assert.matches("live: updated", element_text(html, "live", "span"), nil, c[1])
        assert.are.equal(1, #table_rows(html, "queues"), c[1])
        assert.matches(c[3], element_text(html, c[2], "p"), 1, true)
        assert.is_nil(inside(html, '<p id="' .. c[2] .. '"', ">"):find("hidden", 1, true), c[1])
      end
      -- the bad job alone: the queue's jobs are listed still
      local list = table_rows(htmls[3], "jobs")
      assert.are.same({ id }, { list[1].key })
    end)
  end)
end)

describe("the dashboard, live", function()
  it("follows a job that moves while the page is open, without reloading", function()
    dashboard.chromium()
    local worker = scripted.start(function(w)
      return { default = { gate = w.gate, status = 200, body = '{"done": 12345678901234567890}' } }
    end)
    local emu = helpers.start_emulator { args = { "--verbose", "--worker", dashboard.QUEUE .. "=" .. worker.url } }
    local ok, err = pcall(function()
      local status, text = emu:request("POST", dashboard.JOBS, { body = '{"input":{"step":1}}' })
      assert.are.equal(201, status, text)
      local id = decode(text).id
      assert.truthy(helpers.wait_for(function() return #worker.requests() >= 1 end, 30))
      local function log() return helpers.read_file(emu.err) or "" end
      -- the page open for 100 s of its own time (100 polls, as fast as they are answered)
      local dom = dashboard.dom_later(emu.root .. "/_emulator/ui#queue=" .. dashboard.QUEUE ..
        "&job=" .. id, 100000)
      -- once it has shown the job running, the job ends
      assert.truthy(helpers.wait_for(function()
        return count(log(), "GET /_emulator/ui/data/job 200") >= 1
      end, 60), "the page asked for no job")
      worker.open()
      local html = dom()
      assert.are.equal("succeeded", element_text(html, "job-status", "span"))
      assert.are.equal('{\n  "done": 12345678901234567890\n}', element_text(html, "job-output", "pre"))
      local jobs = table_rows(html, "jobs")
      assert.are.same({ id, "succeeded", "1" }, { jobs[1].key, jobs[1][2], jobs[1][5] })
      local q = table_rows(html, "queues")[1]
      assert.are.same({ "0", "0", "1" }, { q[2], q[3], q[4] })
      -- one load of the page, then its polls: it was never reloaded
      local l = log()
      assert.are.equal(1, count(l, "GET /_emulator/ui 200"))
      assert.are.equal(1, count(l, "GET /_emulator/ui/app.js 200"))
      -- polled many times, yet a job's texts fetched again only when the job changed (its
      -- input while running, then its input and output once succeeded): the page is
      -- updated in place, not rebuilt at every poll
      assert.is_true(count(l, "GET /_emulator/ui/data/job 200") >= 10)
      assert.are.equal(3, count(l, "GET /_emulator/ui/data/text 200"))
    end)
    local code = emu:stop()
    worker.open()
    worker.stop()
    assert(ok, err)
    assert.are.equal(0, code)
  end)
end)

-- ---- over HTTP, no browser ----------------------------------------------------------------

describe("the dashboard's answers", function()
  local emu

  setup(function()
    emu = helpers.start_emulator { args = { "--api-key", dashboard.API_KEY } }
  end)

  teardown(function()
    if emu then assert.are.equal(0, emu:stop()) end
  end)

  local function get(path)
    return helpers.http("GET", emu.root .. path)
  end

  -- A GET with that Host header (helpers.http sends its own), and the response.
  local function get_as(path, host)
    local res = helpers.parse_responses(helpers.raw(emu.root, "GET " .. path ..
      " HTTP/1.1\r\nHost: " .. host .. "\r\nConnection: close\r\n\r\n"))
    assert.are.equal(1, #res)
    return res[1].status, res[1].body, res[1].headers
  end

  local CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " ..
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

  it("serves the page, its script and style with a strict CSP and nosniff, and no inline script", function()
    local types = { ["/_emulator/ui"] = "text/html; charset=utf-8",
      ["/_emulator/ui/"] = "text/html; charset=utf-8",
      ["/_emulator/ui/app.js"] = "text/javascript; charset=utf-8",
      ["/_emulator/ui/app.css"] = "text/css; charset=utf-8",
      ["/_emulator/ui/data/queues"] = "application/json; charset=utf-8" }
    for path, ctype in pairs(types) do
      local status, body, h = get(path)
      assert.are.equal(200, status, path)
      assert.are.equal(ctype, h["content-type"], path)
      assert.are.equal(CSP, h["content-security-policy"], path)
      assert.are.equal("nosniff", h["x-content-type-options"], path)
      assert.are.equal("no-referrer", h["referrer-policy"], path)
      assert.are.equal("no-store", h["cache-control"], path)
      if ctype:find("html") then
        -- every script has a src (the CSP would refuse an inline one anyway), nothing external
        for attrs in body:gmatch("<script([^>]*)>") do
          assert.matches('src="/_emulator/ui/app%.js"', attrs)
        end
        assert.is_nil(body:find("style=", 1, true))
        assert.is_nil(body:find("https?://"))
      end
    end
  end)

  it("answers only a Host that names loopback: a rebound name gets 403 and no data", function()
    local created = emu:request("POST", "/organizations/a-org/projects/p-1/queues/q-1/jobs",
      { body = '{"input":"private text"}' })
    assert.are.equal(201, created)
    for _, host in ipairs { "evil.example", "evil.example:" .. emu.port, "127.0.0.1.evil.example",
      "localhost.evil.example", "[::1].evil.example", "127.1:" .. emu.port, "0.0.0.0:" .. emu.port,
      "user@127.0.0.1", "" } do
      for _, path in ipairs { "/_emulator/ui", "/_emulator/ui/data/queues",
        "/_emulator/ui/data/jobs?queue=a-org/p-1/q-1" } do
        local status, body, h = get_as(path, host)
        assert.are.equal(403, status, host .. " " .. path)
        assert.is_nil(body:find("private", 1, true))
        assert.is_nil(body:find("q-1", 1, true))
        assert.are.equal(CSP, h["content-security-policy"])
      end
    end
    for _, host in ipairs { "127.0.0.1:" .. emu.port, "localhost:" .. emu.port, "LOCALHOST",
      "[::1]:" .. emu.port, "127.2.3.4" } do
      local status = get_as("/_emulator/ui/data/queues", host)
      assert.are.equal(200, status, host)
    end
    -- no Host at all (HTTP/1.0)
    local raw = helpers.raw(emu.root, "GET /_emulator/ui/data/queues HTTP/1.0\r\n\r\n")
    assert.matches("^HTTP/1%.%d 403", raw)
    assert.is_nil(raw:find("q-1", 1, true))
  end)

  it("answers the control API only to a loopback or numeric Host: a rebound name gets 403", function()
    local s, text = emu:request("POST", "/organizations/a-org/projects/p-1/queues/q-9/jobs",
      { body = '{"input":"private text","webhook":"http://127.0.0.1:9/h"}' })
    assert.are.equal(201, s, text)
    local id = decode(text).id
    local function send(method, path, host, body, extra)
      local res = helpers.parse_responses(helpers.raw(emu.root, method .. " " .. path ..
        " HTTP/1.1\r\nHost: " .. host .. "\r\nConnection: close\r\n" .. (extra or "") ..
        (body and "Content-Type: application/json\r\nContent-Length: " .. #body .. "\r\n" or "") ..
        "\r\n" .. (body or "")))
      assert.are.equal(1, #res)
      return res[1].status, res[1].body
    end
    local reads = { "/_emulator/jobs", "/_emulator/jobs?queue=a-org/p-1/q-9", "/_emulator/webhooks",
      "/_emulator/counters", "/_emulator/faults", "/_emulator/ui", "/_emulator/ui/data/queues",
      "/_emulator/nope" }
    for _, host in ipairs { "evil.example:" .. emu.port, "evil.example", "127.0.0.1.evil.example",
      "localhost.evil.example" } do
      for _, path in ipairs(reads) do
        local status, body = send("GET", path, host)
        assert.are.equal(403, status, host .. " " .. path)
        assert.is_nil(body:find("private", 1, true), path)
        assert.is_nil(body:find("q-9", 1, true), path)
      end
      -- nor may it move a job, add a fault or reset
      assert.are.equal(403, (send("POST", "/_emulator/jobs/" .. id .. "/status", host, '{"status":"failed"}')))
      assert.are.equal(403, (send("POST", "/_emulator/faults", host, '{"fault":{"kind":"drop"}}')))
      assert.are.equal(403, (send("POST", "/_emulator/reset", host)))
    end
    local _, job = emu:control("GET", "/_emulator/ui/data/job?id=" .. id)
    assert.are.equal("pending", job.status)
    -- a loopback name or an address: 200 (tools send Host 127.0.0.1:PORT or localhost)
    for _, host in ipairs { "127.0.0.1:" .. emu.port, "localhost:" .. emu.port, "[::1]:" .. emu.port,
      "10.1.2.3:" .. emu.port, "[fe80::1]" } do
      local status, body = send("GET", "/_emulator/jobs?queue=a-org/p-1/q-9", host)
      assert.are.equal(200, status, host)
      assert.truthy(body:find("private text", 1, true))
    end
    -- the API answers any Host (guarded by its key)
    local status = send("GET", "/api/public/organizations/a-org/projects/p-1/queues/q-9/jobs/" .. id,
      "evil.example", nil, "Salad-Api-Key: " .. dashboard.API_KEY .. "\r\n")
    assert.are.equal(200, status)
  end)

  it("refuses a request with two Host headers (400), whichever comes first", function()
    for _, path in ipairs { "/_emulator/ui/data/queues", "/_emulator/jobs",
      "/api/public/organizations/a-org/projects/p-1/queues/q-1/jobs" } do
      for _, hosts in ipairs { { "evil.example", "127.0.0.1" }, { "127.0.0.1", "evil.example" },
        { "127.0.0.1", "127.0.0.1" } } do
        local res = helpers.parse_responses(helpers.raw(emu.root, "GET " .. path .. " HTTP/1.1\r\n" ..
          "Host: " .. hosts[1] .. "\r\nSalad-Api-Key: " .. dashboard.API_KEY .. "\r\nHost: " ..
          hosts[2] .. "\r\nConnection: close\r\n\r\n"))
        assert.are.equal(1, #res)
        assert.are.equal(400, res[1].status, path .. " " .. hosts[1] .. ", " .. hosts[2])
        assert.matches("Host", res[1].body)
      end
    end
  end)

  it("refuses other methods and unknown paths, and bad parameters, without data", function()
    local status, _, h = helpers.http("POST", emu.root .. "/_emulator/ui/data/queues", { body = "{}" })
    assert.are.equal(405, status)
    assert.are.equal("GET, HEAD", h["allow"])
    local head_status, head_body = helpers.http("HEAD", emu.root .. "/_emulator/ui/data/queues")
    assert.are.equal(200, head_status)
    assert.are.equal("", head_body)
    local big = helpers.parse_responses(helpers.raw(emu.root, "GET /_emulator/ui HTTP/1.1\r\n" ..
      "Host: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n"))
    assert.are.equal(413, big[1].status)
    assert.are.equal(404, (get("/_emulator/ui/nope")))
    assert.are.equal(404, (get("/_emulator/ui/data/nope")))
    local body
    status, body = get("/_emulator/ui/data/jobs")
    assert.are.equal(400, status)
    assert.are.equal("queue must be ORG/PROJECT/QUEUE", decode(body).error)
    assert.are.equal(400, (get("/_emulator/ui/data/jobs?queue=a/b")))
    assert.are.equal(400, (get("/_emulator/ui/data/jobs?queue=a-org/p-1/q-1&status=done")))
    assert.are.equal(400, (get("/_emulator/ui/data/jobs?queue=a-org/p-1/q-1&limit=101")))
    assert.are.equal(400, (get("/_emulator/ui/data/jobs?queue=a-org/p-1/q-1&limit=0")))
    assert.are.equal(400, (get("/_emulator/ui/data/jobs?queue=a-org/p-1/q-1&before=x")))
    assert.are.equal(400, (get("/_emulator/ui/data/job?id=nope")))
    assert.are.equal(404, (get("/_emulator/ui/data/job?id=00000000-0000-4000-8000-000000000000")))
  end)

  it("serves a job's texts byte for byte as text/plain, HTML and huge numbers included", function()
    local input = '{ "a" : 1.50000000000000000000001, "h": "<h1>x</h1>\\u2028",  "big":9999999999999999999 }'
    local s, text = emu:request("POST", "/organizations/a-org/projects/p-1/queues/q-2/jobs",
      { body = '{"input":1, "metadata":{"html":"<script>x</script>"}}' })
    assert.are.equal(201, s, text)
    local id = decode(text).id
    local c = helpers.http("POST", emu.root .. "/_emulator/jobs/" .. id .. "/status",
      { body = '{"status":"succeeded","output":' .. input .. "}" })
    assert.are.equal(200, c)
    local status, body, h = get("/_emulator/ui/data/text?id=" .. id .. "&part=output")
    assert.are.equal(200, status)
    assert.are.equal(input, body)
    assert.are.equal("text/plain; charset=utf-8", h["content-type"])
    assert.are.equal("nosniff", h["x-content-type-options"])
    status, body = get("/_emulator/ui/data/text?id=" .. id .. "&part=metadata")
    assert.are.equal(200, status)
    assert.are.equal('{"html":"<script>x</script>"}', body)
    assert.are.equal(400, (get("/_emulator/ui/data/text?id=" .. id .. "&part=webhook")))
  end)
end)

-- ---- emulator.ui in plain Lua ---------------------------------------------------------------
-- The emulator's Lua runs inside the emulator, which embeds 5.4 (5.3 with LUA_VERSION=5.3):
-- on 5.1 and LuaJIT its files do not compile in this Lua state, as in emulator_app_spec.lua.
-- The specs above, against the binary, run on every Lua.
if math.type == nil then
  describe("emulator.ui (plain Lua)", function()
    pending("the emulator's Lua runs on 5.3 and 5.4 only (it embeds 5.4)")
  end)
  return
end

local App = require "emulator.app"

local function fake_host()
  local host = { uuids = 0, tick = 0, now = 1000, glob_max = 512 }
  function host.uuid4()
    host.uuids = host.uuids + 1
    return ("%08x-0000-4000-8000-%012x"):format(host.uuids, host.uuids)
  end
  function host.timestamp()
    host.tick = host.tick + 1
    return ("2026-01-01T00:00:%02d.0000000+00:00"):format(host.tick % 60)
  end
  function host.monotime() return host.now end
  function host.deliveries_changed() end
  function host.worker_ready() end
  function host.random_bytes(n) return ("r"):rep(n) end
  function host.glob() return { match = function() return false end } end
  return host
end

local function body_of(res)
  return type(res.body) == "table" and table.concat(res.body) or res.body
end

local function ui(app, path, query, req)
  local r = { method = "GET", path = path, query = query, host = "127.0.0.1:8787", loopback = true }
  for k, v in pairs(req or {}) do r[k] = v end
  local res = app:handle(r)
  return res.status, res.status == 200 and res.content_type:find("json") and decode(body_of(res)) or body_of(res)
end

local Q = "acme-corp/dev-env/qq"
local JOBS = "/api/public/organizations/acme-corp/projects/dev-env/queues/qq/jobs"
local KEY = "salad-emulator-key"

local function create(app, body)
  local res = app:handle { method = "POST", path = JOBS, api_key = KEY, body = body or '{"input":1}' }
  assert.are.equal(201, res.status)
  return decode(body_of(res)).id
end

describe("emulator.ui (plain Lua)", function()
  it("answers a peer that is not loopback 403, whatever its Host says", function()
    local app = assert(App.new { args = {}, host = fake_host() })
    create(app)
    for _, path in ipairs { "/_emulator/ui", "/_emulator/ui/app.js", "/_emulator/ui/data/queues" } do
      local status, body = ui(app, path, nil, { loopback = false })
      assert.are.equal(403, status)
      assert.is_nil(tostring(body):find("acme", 1, true))
      local res = app:handle { method = "GET", path = path, host = "localhost" }   -- (not told)
      assert.are.equal(403, res.status)
    end
    assert.are.equal(200, (ui(app, "/_emulator/ui/data/queues")))
    -- (in plain Lua the page's files are read from emulator/ui/)
    local status, page = ui(app, "/_emulator/ui")
    assert.are.equal(200, status)
    assert.matches('<script src="/_emulator/ui/app.js" defer></script>', page, 1, true)
  end)

  it("keeps each queue's counts equal to a count of its jobs through every move", function()
    local host = fake_host()
    local app = assert(App.new { args = { "--max-jobs", "30", "--worker", Q .. "=http://127.0.0.1:9/run",
      "--worker", Q .. "=http://u:pw@127.0.0.1:9/run" }, host = host })
    local function recount()
      local n = { pending = 0, running = 0, succeeded = 0, failed = 0, cancelled = 0 }
      local res = app:handle { method = "GET", path = "/_emulator/jobs", query = "queue=" .. Q }
      for _, j in ipairs(decode(body_of(res)).items) do n[j.status] = n[j.status] + 1 end
      return n
    end
    local function check()
      local _, data = ui(app, "/_emulator/ui/data/queues")
      local want = recount()
      local got = data.queues[1] and data.queues[1].counts or {}
      for s, c in pairs(want) do assert.are.equal(c, got[s] or 0, s) end
      if data.queues[1] then assert.are.equal(want.pending, data.queues[1].current_queue_length) end
    end
    -- a queue with a --worker and no job yet is listed, with zeros
    local _, data0 = ui(app, "/_emulator/ui/data/queues")
    assert.are.equal(Q, data0.queues[1].name)
    assert.are.equal(0, data0.queues[1].total)
    local ids = {}
    for i = 1, 12 do
      ids[i] = create(app)
      check()
    end
    -- the worker: an attempt rejected (back to pending), attempts that complete, 4 rejected
    local t1, id1 = app:next_job(1)
    check()
    app:report(t1, id1, 503, nil, false, nil, false)
    check()
    for _ = 1, 4 do
      local t, id = app:next_job(1)
      app:report(t, id, 500, nil, false, nil, false)
      check()
    end
    local t2, id2 = app:next_job(2)
    app:report(t2, id2, 200, '{"x":1}', false, nil, true)
    check()
    local t3, id3 = app:next_job(1)   -- left running
    check()
    -- cancels: pending (moves), running and final (do not)
    for _, id in ipairs { ids[10], id3, id2, ids[11] } do
      app:handle { method = "DELETE", path = JOBS .. "/" .. id, api_key = KEY }
      check()
    end
    -- the control API
    app:handle { method = "POST", path = "/_emulator/jobs/" .. ids[12] .. "/status", body = '{"status":"running"}' }
    check()
    app:handle { method = "POST", path = "/_emulator/jobs/" .. id3 .. "/status", body = '{"status":"failed"}' }
    check()
    -- evictions past --max-jobs, oldest first, in every status
    for _ = 1, 40 do
      create(app)
      check()
    end
    -- a report for a forgotten job changes nothing
    app:report(t3, id3, 200, "{}", false, nil, true)
    check()
    -- the queue deleted, then used again
    app:handle { method = "DELETE", path = "/api/public/organizations/acme-corp/projects/dev-env/queues/qq", api_key = KEY }
    local _, data = ui(app, "/_emulator/ui/data/queues")
    -- (a deleted queue is not listed, though its --worker names it)
    assert.are.equal(0, #data.queues)
    app:handle { method = "POST", path = "/api/public/organizations/acme-corp/projects/dev-env/queues",
      api_key = KEY, body = '{"name":"qq"}' }
    create(app)
    check()
    -- the worker's URLs without their credentials, with their instances
    _, data = ui(app, "/_emulator/ui/data/queues")
    assert.are.same({ { url = "http://127.0.0.1:9/run", instances = 2 } }, data.queues[1].workers)
  end)

  it("pages 10,000 jobs newest first, each once, and by status", function()
    local app = assert(App.new { args = {}, host = fake_host() })
    local ids = {}
    for i = 1, 10000 do ids[i] = create(app) end
    for i = 1, 10000, 7 do
      app:handle { method = "DELETE", path = JOBS .. "/" .. ids[i], api_key = KEY }
    end
    local function all(status, limit)
      local seen, before, pages = {}, nil, 0
      repeat
        local q = "queue=" .. Q .. (status and "&status=" .. status or "") ..
          (before and "&before=" .. before or "") .. "&limit=" .. limit
        local code, page = ui(app, "/_emulator/ui/data/jobs", q)
        assert.are.equal(200, code)
        assert.is_true(#page.items <= limit)
        for _, j in ipairs(page.items) do seen[#seen + 1] = j end
        before, pages = page.next, pages + 1
      until before == nil
      return seen, pages
    end
    local _, default = ui(app, "/_emulator/ui/data/jobs", "queue=" .. Q)
    assert.are.equal(50, #default.items)
    assert.are.equal(ids[10000], default.items[1].id)
    local list, pages = all(nil, 100)
    assert.are.equal(10000, #list)
    assert.are.equal(100, pages)
    for i, j in ipairs(list) do assert.are.equal(ids[10001 - i], j.id) end
    local cancelled = all("cancelled", 100)
    assert.are.equal(1429, #cancelled)   -- 1, 8, ..., 9997
    for k, j in ipairs(cancelled) do
      assert.are.equal("cancelled", j.status)
      assert.are.equal(ids[9997 - 7 * (k - 1)], j.id)
    end
    local _, first = ui(app, "/_emulator/ui/data/jobs", "queue=" .. Q .. "&status=cancelled&limit=5")
    assert.are.equal(1429, first.matching)
    -- a rare status, the oldest job: one request looks at 2,000 jobs at most, and the page
    -- goes on from where it stopped
    app:handle { method = "POST", path = "/_emulator/jobs/" .. ids[2] .. "/status", body = '{"status":"failed"}' }
    local _, short = ui(app, "/_emulator/ui/data/jobs", "queue=" .. Q .. "&status=failed")
    assert.are.same({}, short.items)
    assert.are.equal(10000 - 2000 + 1, short.next)
    assert.are.equal(1, short.matching)
    local failed, hops = all("failed", 50)
    assert.are.equal(1, #failed)
    assert.are.equal(ids[2], failed[1].id)
    assert.are.equal(5, hops)
    -- a status with no job: an empty page and no next one, at once
    local _, none = ui(app, "/_emulator/ui/data/jobs", "queue=" .. Q .. "&status=running")
    assert.are.same({}, none.items)
    assert.is_nil(none.next)
    -- the preview is cut on a character, and says the input's size
    local id = create(app, '{"input":"' .. ("é"):rep(100) .. '"}')
    local _, page = ui(app, "/_emulator/ui/data/jobs", "queue=" .. Q .. "&limit=1")
    assert.are.equal(id, page.items[1].id)
    local preview = page.items[1].preview   -- (decoded: it was valid UTF-8)
    assert.is_true(#preview <= 80 and #preview >= 78)
    assert.are.equal(('"' .. ("é"):rep(100)):sub(1, #preview), preview)
    assert.are.equal(202, page.items[1].input_bytes)
  end)

  it("closes an attempt whose answer came after the control API finished the job", function()
    local host = fake_host()
    local app = assert(App.new { args = { "--worker", Q .. "=http://127.0.0.1:9/run" }, host = host })
    local id = create(app)
    local token = app:next_job(1)
    local res = app:handle { method = "POST", path = "/_emulator/jobs/" .. id .. "/status",
      body = '{"status":"succeeded","output":{"by":"control"}}' }
    assert.are.equal(200, res.status)
    host.now = host.now + 2
    app:report(token, id, 200, '{"late":1}', false, nil, true)
    assert.are.equal(1, app.counters.worker_ignored)
    local _, job = ui(app, "/_emulator/ui/data/job", "id=" .. id)
    assert.are.equal("succeeded", job.status)
    assert.are.equal(1, #job.attempts)
    local a = job.attempts[1]
    assert.are.same({ 200, 2000, "ignored: the job was already succeeded" }, { a.status, a.ms, a.outcome })
    local _, out = ui(app, "/_emulator/ui/data/text", "id=" .. id .. "&part=output")
    assert.are.equal('{"by":"control"}', out)
    -- a failed call, after the job was set failed
    local id2 = create(app)
    local token2 = app:next_job(1)
    app:handle { method = "POST", path = "/_emulator/jobs/" .. id2 .. "/status", body = '{"status":"failed"}' }
    app:report(token2, id2, 0, nil, false, "connection refused", false)
    app:report(token2, id2, 200, "{}", false, nil, true)   -- (a second answer changes nothing)
    local _, job2 = ui(app, "/_emulator/ui/data/job", "id=" .. id2)
    assert.are.same({ "connection refused", "ignored: the job was already failed" },
      { job2.attempts[1].error, job2.attempts[1].outcome })
    assert.is_nil(job2.attempts[1].status)
    assert.are.equal(3, app.counters.worker_ignored)
  end)

  -- (the same string, kept once: a timestamp of its own cost 58 more bytes per attempt)
  it("gives each attempt the time of its started event", function()
    local app = assert(App.new { args = { "--worker", Q .. "=http://127.0.0.1:9/run" }, host = fake_host() })
    local id = create(app)
    for _ = 1, 4 do
      local token = app:next_job(1)
      app:report(token, id, 500, nil, false, nil, false)
    end
    local _, job = ui(app, "/_emulator/ui/data/job", "id=" .. id)
    local started = {}
    for _, e in ipairs(job.events) do
      if e.action == "started" then started[#started + 1] = e.time end
    end
    local times = {}
    for i, a in ipairs(job.attempts) do times[i] = a.time end
    assert.are.equal(4, #times)
    assert.are.same(started, times)
  end)

  it("finds a job's deliveries by an index bounded like the log, not by walking the log", function()
    local Webhooks = require "emulator.webhooks"
    local saved = Webhooks.MAX_LOG
    Webhooks.MAX_LOG = 5
    local ok, err = pcall(function()
      local app = assert(App.new { args = {}, host = fake_host() })
      local ids = {}
      for i = 1, 8 do
        ids[i] = create(app, '{"input":1,"webhook":"http://127.0.0.1:9/h"}')
        app:handle { method = "DELETE", path = JOBS .. "/" .. ids[i], api_key = KEY }
        app:delivered(app:next_delivery(), 200)
      end
      local indexed = 0
      for _, list in pairs(app.webhooks.by_job) do indexed = indexed + #list end
      assert.are.equal(5, indexed)   -- the log's 5: the 3 oldest left both
      for i = 1, 8 do
        local _, job = ui(app, "/_emulator/ui/data/job", "id=" .. ids[i])
        assert.are.equal(i > 3 and 1 or 0, #job.deliveries, i)
        local res = app:handle { method = "GET", path = "/_emulator/webhooks", query = "job_id=" .. ids[i] }
        local log = decode(body_of(res)).deliveries
        assert.are.equal(i > 3 and 1 or 0, #log, i)
        if i > 3 then assert.are.equal(ids[i], log[1].job_id) end
      end
      app:handle { method = "POST", path = "/_emulator/reset" }
      assert.is_nil(next(app.webhooks.by_job))
    end)
    Webhooks.MAX_LOG = saved
    assert(ok, err)
  end)

  it("lists 500 queues at most, and says how many more there are", function()
    local app = assert(App.new { args = {}, host = fake_host() })
    for i = 1, 501 do
      local res = app:handle { method = "POST", api_key = KEY, body = '{"input":1}',
        path = ("/api/public/organizations/acme-corp/projects/dev-env/queues/q%03d/jobs"):format(i) }
      assert.are.equal(201, res.status)
    end
    local _, data = ui(app, "/_emulator/ui/data/queues")
    assert.are.equal(500, #data.queues)
    assert.are.equal(1, data.more)
    assert.are.equal("acme-corp/dev-env/q001", data.queues[1].name)
    assert.are.equal("acme-corp/dev-env/q500", data.queues[500].name)
  end)

  it("shows which attempts were signed with the secret in use, never the secret", function()
    local host = fake_host()
    local app = assert(App.new { args = { "--webhook-secret", dashboard.SECRET }, host = host })
    local id = create(app, '{"input":1,"webhook":"http://127.0.0.1:9/hook"}')
    app:handle { method = "DELETE", path = JOBS .. "/" .. id, api_key = KEY }
    local token = app:next_delivery()
    app:delivered(token, 503)
    host.now = host.now + 10
    local _, job = ui(app, "/_emulator/ui/data/job", "id=" .. id)
    assert.is_true(job.deliveries[1].attempts[1].current_secret)
    app:handle { method = "POST", path = "/api/public/organizations/acme-corp/webhook-secret-key", api_key = KEY }
    token = app:next_delivery()
    app:delivered(token, 200)
    local res = app:handle { method = "GET", path = "/_emulator/ui/data/job", query = "id=" .. id,
      host = "localhost", loopback = true }
    local text = body_of(res)
    job = decode(text)
    local a = job.deliveries[1].attempts
    assert.are.same({ false, true }, { a[1].current_secret, a[2].current_secret })
    assert.are.same({ 503, 200 }, { a[1].status, a[2].status })
    assert.matches("^v1,", a[1].headers["webhook-signature"])
    assert.are.equal(job.deliveries[1].id, a[2].headers["webhook-id"])
    assert.is_nil(text:find(dashboard.SECRET, 1, true))
    local secret = decode(body_of(app:handle { method = "GET",
      path = "/api/public/organizations/acme-corp/webhook-secret-key", api_key = KEY })).secret_key
    assert.is_nil(text:find(secret, 1, true))
    assert.is_nil(text:find(KEY, 1, true))
  end)
end)
