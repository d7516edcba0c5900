-- Altered echoes of the key (issue 21, item 1): a server may echo a part of the key, change
-- its case, or encode it (hex, base64, base64url, inside a longer base64 as in "user:key").
-- Each form is sent back by a hostile loopback server and looked for in what the user gets:
-- errors (message, detail), create_many's on_result errors, and salad-jobs' stdout and
-- stderr. The oracle is plain string.find on the lower-cased text: no 12 bytes of the key in
-- a row, in any case, and no 16 characters in a row of any of its encodings.
local qj = require "queue_jobs"
local core = require "queue_jobs.core"
local helpers = require "support.helpers"
local scripted = require "support.scripted"
local cli = require "support.cli"
local serve, response = scripted.serve, scripted.response

local KEY = "qjk_7Fh2LmQ9xT4vB8nR3wY6zK1pD5sA0cE2gH7jU" -- 41 bytes, as in the issue
local UUID = "7dcd6922-50e9-4d56-89b5-91cde26f0211"
local R = "[REDACTED]"

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

--- base64 of s (with padding); url: base64url, without.
local function base64(s, url)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    for k = 0, 3 do
      if k <= #s - i + 1 then
        local x = math.floor(v / 2 ^ (18 - 6 * k)) % 64
        out[#out + 1] = B64:sub(x + 1, x + 1)
      elseif not url then
        out[#out + 1] = "="
      end
    end
  end
  local t = table.concat(out)
  if url then t = t:gsub("+", "-"):gsub("/", "_") end
  return t
end

local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

--- The altered echoes of key a server might send back: {name, text}.
local function forms(key)
  local n = #key
  local b = base64(key)
  return {
    { "all but the last byte", key:sub(1, -2) },
    { "all but the first byte", key:sub(2) },
    { "a 12-byte prefix", key:sub(1, 12) },
    { "a 12-byte middle", key:sub(math.floor(n / 2) - 5, math.floor(n / 2) + 6) },
    { "a 12-byte suffix", key:sub(-12) },
    { "upper case", key:upper() },
    { "lower case", key:lower() },
    { "upper case, cut", key:upper():sub(3, 20) },
    { "base64", b },
    { "base64url", base64(key, true) },
    { "16 characters of base64", b:sub(5, 20) },
    { "base64 in a Basic credential", "Basic " .. base64("user:" .. key) },
    { "base64 after one byte", base64("u" .. key) },
    { "base64 after two bytes", base64("uu" .. key) },
    { "hex", hex(key) },
    { "HEX", hex(key):upper() },
    { "16 characters of hex", hex(key):sub(9, 24) },
  }
end

--- Fails when any string in v (keys and values of tables, at any depth) holds 12 bytes of key
-- in a row (any case), or 16 characters in a row of its hex, base64 or base64url.
local function assert_clean(v, key, what)
  local runs = {}
  local function add(s, len)
    s = s:lower()
    if #s < len then runs[#runs + 1] = s return end
    for i = 1, #s - len + 1 do runs[#runs + 1] = s:sub(i, i + len - 1) end
  end
  add(key, 12)
  for _, enc in ipairs { hex(key), base64(key):gsub("=", ""), base64(key, true),
    base64("u" .. key):sub(3, -2), base64("uu" .. key):sub(4, -2) } do add(enc, 16) end
  local seen = {}
  local function walk(x)
    if type(x) == "string" then
      local low = x:lower()
      for _, r in ipairs(runs) do
        assert(not low:find(r, 1, true), ("%s: %q holds %q"):format(what, x, r))
      end
    elseif type(x) == "table" and not seen[x] then
      seen[x] = true
      for k, y in pairs(x) do walk(k) walk(y) end
    end
  end
  walk(v)
end

local function client(url, key, extra)
  local o = { api_key = key or KEY, base_url = url, organization_name = "acme-corp",
    project_name = "dev-env", rate_limit = false, timeout = 10, retries = 0 }
  for k, x in pairs(extra or {}) do o[k] = x end
  return assert(qj.client(o))
end

---------------------------------------------------------------------------------------------
describe("core.redact: altered echoes of the key", function()
  it("replaces each form, and the oracle agrees", function()
    for _, f in ipairs(forms(KEY)) do
      local out = core.redact(KEY, "the key " .. f[2] .. " is refused")
      assert.matches("%[REDACTED%]", out, f[1])
      assert_clean(out, KEY, f[1])
    end
  end)

  it("leaves shorter runs alone: 11 bytes of the key, 15 characters of an encoding", function()
    for _, s in ipairs { KEY:sub(1, 11), KEY:sub(20, 30), KEY:upper():sub(3, 13),
      base64(KEY):sub(5, 19), hex(KEY):sub(1, 15), "a 64 KiB-free line of ordinary text" } do
      assert.equal("<" .. s .. ">", core.redact(KEY, "<" .. s .. ">"))
    end
  end)

  it("takes a key shorter than 12 bytes whole, in any case; keys under 8 bytes as before", function()
    local k = "sk-Ab3dE9x" -- 10 bytes
    assert.equal("a " .. R .. " b", core.redact(k, "a " .. k:upper() .. " b"))
    assert.equal("a " .. R .. " b", core.redact(k, "a " .. k:lower() .. " b"))
    assert.equal("a " .. R .. base64(k):match("=*$") .. " b", core.redact(k, "a " .. base64(k) .. " b"))
    assert.equal("a sk-Ab3dE9 b", core.redact(k, "a sk-Ab3dE9 b"))
    assert.equal("secret SECRET", core.redact("secret", "secret SECRET"))
  end)

  it("redacts every echo of a text, escaped, cut or encoded, each once", function()
    local text = "1 " .. KEY:sub(1, 20) .. " 2 " .. hex(KEY) .. " 3 " .. KEY:gsub("/", "\\/") ..
      " 4 " .. base64(KEY, true) .. " 5"
    assert.equal("1 " .. R .. " 2 " .. R .. " 3 " .. R .. " 4 " .. R .. " 5", core.redact(KEY, text))
  end)
end)

---------------------------------------------------------------------------------------------
describe("errors: altered echoes in err.message and err.detail", function()
  it("are redacted, from text bodies and from ProblemDetails", function()
    local fs, responses = forms(KEY), {}
    for _, f in ipairs(fs) do
      responses[#responses + 1] = response(401, "Unauthorized", { "Content-Type: text/plain" },
        "invalid key " .. f[2])
      responses[#responses + 1] = response(400, "Bad Request",
        { "Content-Type: application/problem+json" },
        '{"title":"Bad key","detail":"the key ' .. f[2] .. ' is not welcome"}')
    end
    local url, srv = serve(responses)
    local c = client(url)
    for _, f in ipairs(fs) do
      local _, err = c:get { queue_name = "fifo", id = UUID }
      assert.equal(401, err.status)
      assert.matches("%[REDACTED%]", err.message, f[1])
      assert_clean(err, KEY, "text body, " .. f[1])
      _, err = c:get { queue_name = "fifo", id = UUID }
      assert.equal(400, err.status)
      assert.matches("%[REDACTED%]", err.detail, f[1])
      assert_clean(err, KEY, "detail, " .. f[1])
    end
    c:close()
    srv.finish()
  end)
end)

---------------------------------------------------------------------------------------------
-- A transfer builds its matcher of the key once and keeps it for every answer it reads
-- (src/transfer.c): every header value of every answer on the connection is still searched.
describe("errors: altered echoes in header values", function()
  it("are redacted from the Content-Type of each answer on one connection, in turn", function()
    local fs, responses = forms(KEY), {}
    for _, f in ipairs(fs) do
      responses[#responses + 1] = response(400, "Bad Request",
        { "Content-Type: text/plain; key=" .. f[2] }, "no")
    end
    local url, srv = serve(responses)
    local c = client(url)
    for _, f in ipairs(fs) do
      local _, err = c:get { queue_name = "fifo", id = UUID }
      assert.equal(400, err.status)
      assert.matches("%[REDACTED%]", err.content_type, f[1])
      assert_clean(err, KEY, "Content-Type, " .. f[1])
    end
    assert.equal(1, c:stats().connects)
    c:close()
    srv.finish()
  end)
end)

---------------------------------------------------------------------------------------------
describe("create_many: altered echoes in on_result's errors", function()
  it("are redacted", function()
    local fs = forms(KEY)
    local w = scripted.start(function()
      local script = {}
      for i, f in ipairs(fs) do
        script[i] = { status = 400, type = "application/problem+json",
          body = '{"title":"Bad key","detail":"the key ' .. f[2] .. ' is not welcome"}' }
      end
      return script
    end)
    local c = client((w.url:gsub("/run$", "/api/public")))
    local items = {}
    for i = 1, #fs do items[i] = { queue_name = "fifo", input = { n = i } } end
    local errs = {}
    local report = assert(c:create_many(items, { concurrency = 1, reconcile = false,
      on_result = function(i, job, err)
        assert.is_nil(job)
        errs[i] = err
      end }))
    c:close()
    w.stop()
    assert.equal(#fs, report.failed)
    for i, f in ipairs(fs) do
      assert.equal(400, errs[i].status)
      assert.matches("%[REDACTED%]", errs[i].detail, f[1])
      assert_clean(errs[i], KEY, f[1])
    end
  end)
end)

---------------------------------------------------------------------------------------------
describe("salad-jobs: altered echoes on stdout and stderr", function()
  after_each(cli.cleanup)

  it("are redacted from the jobs it prints and from its messages", function()
    local fs = forms(cli.KEY)
    local note = {}
    for i, f in ipairs(fs) do note[i] = i .. ": " .. f[2] end
    local job = { id = "11111111-1111-4111-8111-111111111111", status = "pending",
      input = { notes = note }, events = {}, create_time = "2024-01-20T01:02:48.4787553+00:00",
      update_time = "2024-01-20T01:02:48.4787553+00:00" }
    local detail = {}
    for _, f in ipairs(fs) do detail[#detail + 1] = f[2] end
    local srv = scripted.start {
      { status = 200, body = helpers.json.encode(job) },
      default = { status = 400, type = "application/problem+json",
        body = helpers.json.encode { title = "Bad key", detail = "refused: " .. table.concat(detail, " ") } },
    }
    local env = { env = { SALAD_BASE_URL = srv.url:gsub("/run$", "/api/public") } }
    local _, out = cli.run(nil, { "get", "--queue", cli.Q, job.id }, env)
    local code, out2, err = cli.run(nil, { "--verbose", "get", "--queue", cli.Q, job.id }, env)
    srv.stop()
    assert.matches("%[REDACTED%]", out)             -- the job was printed, its notes redacted
    assert.equal(#fs, select(2, out:gsub("%[REDACTED%]", "")))
    assert_clean(out, cli.KEY, "stdout")
    assert.equal(1, code)
    assert.matches("refused: %[REDACTED%]", err)    -- the 400's detail reached stderr
    assert_clean(out2 .. err, cli.KEY, "stderr")
  end)
end)
