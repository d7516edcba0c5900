-- The parts of salad-jobs that need no server (lua/queue_jobs/cli/*.lua): its command line,
-- a JSONL line as a job with the JSONPath of what is wrong in it, and the progress line.
local compat = require "queue_jobs.compat"
local args = require "queue_jobs.cli.args"
local jsonl = require "queue_jobs.cli.jsonl"
local progress = require "queue_jobs.progress"

describe("salad-jobs' command line (queue_jobs.cli.args)", function()
  local OPTS = { queue = { takes = "string" }, concurrency = { takes = "count" },
    ["rate-limit"] = { takes = "rate" }, timeout = { takes = "seconds" }, retries = { takes = "retries" },
    ["input-only"] = {} }

  it("reads --name value, --name=value, flags, -h, - and --", function()
    local o, pos = args.parse({ "--queue", "q1", "--concurrency=4", "--input-only", "a", "-",
      "-h", "--", "--queue" }, 1, OPTS)
    assert.are.same({ queue = "q1", concurrency = 4, input_only = true, help = true }, o)
    assert.are.same({ "a", "-", "--queue" }, pos)
    o = assert(args.parse({ "--rate-limit", "none", "--timeout", "0.5", "--retries", "0" }, 1, OPTS))
    assert.are.same({ rate_limit = false, timeout = 0.5, retries = 0 }, o)
  end)

  it("stops at the command with stop, giving its index", function()
    local o, _, at = args.parse({ "--queue", "x", "submit", "--concurrency", "2" }, 1, OPTS, true)
    assert.are.same({ queue = "x" }, o)
    assert.are.equal(3, at)
  end)

  it("names the option at fault, and never quotes the value it was given", function()
    local cases = {
      { { "--concurrency", "0" }, "--concurrency must be an integer of 1 or more" },
      { { "--concurrency", "2.5" }, "--concurrency must be an integer of 1 or more" },
      { { "--rate-limit", "fast" }, '--rate-limit must be a number of requests a minute, or "none"' },
      { { "--timeout", "-1" }, "--timeout must be a number of seconds in (0, 1000000]" },
      { { "--timeout", "nan" }, "--timeout must be a number of seconds in (0, 1000000]" },
      { { "--retries", "101" }, "--retries must be an integer within 0..100" },
      { { "--queue" }, "--queue needs a value" },
      { { "--queue=" }, "--queue must be a non-empty value" },
      { { "--input-only=yes" }, "--input-only takes no value" },
      { { "--secret-thing=hunter2" }, "--secret-thing is not an option here (see --help)" },
      { { "-xhunter2" }, "-x is not an option (options are --long; see --help)" },
    }
    for _, c in ipairs(cases) do
      local o, why = args.parse(c[1], 1, OPTS)
      assert.is_nil(o)
      assert.are.equal(c[2], why)
      assert.is_nil(why:find("hunter2", 1, true))
    end
  end)

  it("takes options that check their own values, repeat into lists and end the reading, " ..
     "in another program's words (the emulator's)", function()
    local function even(v, opt)
      local n = compat.tointeger(tonumber(v or ""))
      if not n or n % 2 ~= 0 then return nil, opt .. " wants an even number, got " .. tostring(v) end
      return n
    end
    local O = { help = { ends = true }, n = { check = even }, tag = { check = even, list = true, key = "tags" },
      quiet = {} }
    local STYLE = { unknown = function(a) return ("unknown option %q"):format(a) end,
      no_value = function(opt, a) return opt .. " takes no value, got " .. a end }
    assert.are.same({ n = 4, tags = { 2, 6 }, quiet = true },
      (args.parse({ "--tag", "2", "--n=4", "--quiet", "--tag=6" }, 1, O, nil, STYLE)))
    assert.are.same({ n = 2, help = true }, (args.parse({ "--n", "2", "--help", "--n", "odd" }, 1, O, nil, STYLE)))
    assert.are.same({ help = true }, (args.parse({ "-h", "--bogus" }, 1, O, nil, STYLE)))
    local cases = {
      { { "--n", "3" }, "--n wants an even number, got 3" },
      { { "--n" }, "--n wants an even number, got nil" },   -- a missing value goes to the check
      { { "--quiet=1" }, "--quiet takes no value, got --quiet=1" },
      { { "--bogus=1" }, 'unknown option "--bogus=1"' },
      { { "word" }, 'unknown option "word"' },
      { { "--" }, 'unknown option "--"' },
      { { "-" }, 'unknown option "-"' },
      { { "-x" }, 'unknown option "-x"' },
      { { "--n", "3", "--help" }, "--n wants an even number, got 3" },
    }
    for _, c in ipairs(cases) do
      local o, why = args.parse(c[1], 1, O, nil, STYLE)
      assert.is_nil(o)
      assert.are.equal(c[2], why)
    end
    -- without a style, the same table reads as salad-jobs reads its own
    assert.are.equal("--quiet takes no value", select(2, args.parse({ "--quiet=1" }, 1, O)))
    assert.are.same({ "word" }, select(2, args.parse({ "word" }, 1, O)))
  end)
end)

describe("a submit line as a job (queue_jobs.cli.jsonl)", function()
  local FULL = { full = true, reconcile = true }

  it("finds the JSONPath where a line stops being JSON", function()
    local cases = {
      { "x", "$" },
      { '{"input": {"a": [1, 2, tru]}}', "$.input.a[2]" },
      { '{"input": [[1], [2, {"k": nul', "$.input[1][1].k" },
      { '{"a b": {"c\\"d": [0, x]}}', '$["a b"]["c\\"d"][1]' },
      { '{"input": "unterminated', "$.input" },
      { '{"input": 1, "metadata": {"x": 1,}}', "$.metadata" },
      { '{"input": {}} trailing', "$" },
      { '[{"a": 1}, {"b": [2,]}]', "$[1].b[1]" },
    }
    for _, c in ipairs(cases) do
      local proto, why = jsonl.item(c[1], 7, {})
      assert.is_nil(proto, c[1])
      assert.are.equal("line 7: " .. c[2] .. ":", why:match("^line 7: .-:"), c[1] .. " -> " .. why)
    end
  end)

  it("turns a line into create's arguments, the input as the line's own text", function()
    local p = assert(jsonl.item('{"input": {"n": 12345678901234567890, "f": 2.50}, "metadata": ' ..
      '{"row": 3, "big": 1.0E300}, "webhook": "https://example.com/h"}', 3, FULL))
    assert.are.equal('{"n": 12345678901234567890, "f": 2.50}', tostring(p.input))
    assert.are.equal("3", tostring(p.metadata.row))           -- the metadata's values too
    assert.are.equal("1.0E300", tostring(p.metadata.big))
    assert.are.equal("https://example.com/h", p.webhook)
    p = assert(jsonl.item(' [1, 2.0] ', 1, { input_only = true, full = true }))
    assert.are.equal("[1, 2.0]", tostring(p.input))
    assert.is_false(jsonl.item(" \t\r", 1, FULL))
    -- a UTF-8 byte order mark before the first line (some editors write one) is not the line's
    assert.are.equal("1", tostring(assert(jsonl.item('\239\187\191{"input": 1}', 1, FULL)).input))
    assert.is_nil((jsonl.item('\239\187\191{"input": 1}', 2, FULL)))
  end)

  it("refuses what is not a job, naming the field", function()
    local twenty = {}
    for i = 1, 20 do twenty[i] = ('"k%d": 1'):format(i) end
    local cases = {
      { "[1]", "line 1: $: must be a JSON object" },
      { '{"input": 1, "Input": 2}', "line 1: $.Input: is not a field of a job" },
      { '{"input": 1, "a b": 2}', 'line 1: $["a b"]: is not a field of a job' },
      { '{"metadata": {}}', "line 1: $.input: is required" },
      { '{"input": 1, "metadata": [1]}', "line 1: $.metadata: must be a JSON object" },
      { '{"input": 1, "webhook": 5}', "line 1: $.webhook: must be a string URL (got number)" },
      { '{"input": 1, "metadata": {' .. table.concat(twenty, ",") .. '}}', "line 1: $.metadata: has 20 properties: " ..
        "a bulk create adds its batch item key (queue_jobs_batch_item), and the API allows 20\0" },
      { '{"input": 1, "metadata": {"queue_jobs_batch_item": "x"}}', "line 1: $.metadata.queue_jobs_batch_item: is the batch item key" },
    }
    for _, c in ipairs(cases) do
      local proto, why = jsonl.item(c[1], 1, FULL)
      assert.is_nil(proto, c[1])
      why = why .. "\0"   -- (a case ending in \0 is the whole message)
      assert.are.equal(c[2], why:sub(1, #c[2]), why)
    end
    -- a null metadata or webhook is one not given, as the API reads it
    local p = assert(jsonl.item('{"input": 1, "metadata": null, "webhook": null}', 1, FULL))
    assert.is_nil(p.metadata)
    assert.is_nil(p.webhook)
    -- without full, what create itself checks is left to create (nothing is sent either way)
    assert.is_table(jsonl.item('{"input": 1, "webhook": 5}', 1, {}))
  end)
end)

describe("the progress line (queue_jobs.progress)", function()
  local function fake()
    local buf = {}
    return { write = function(self, ...) for _, s in ipairs { ... } do buf[#buf + 1] = s end return self end,
      flush = function() end, text = function() return table.concat(buf) end }
  end

  it("draws done/total, the counts, the rate and the ETA, at most 10 times a second", function()
    local t = 100
    local s = fake()
    local f = io.tmpfile()           -- not a terminal: nothing is drawn
    local off = progress.new { what = "submit", unit = "lines", stream = f, clock = function() return t end }
    assert.is_false(off.on)
    off:draw(1, 10, {}, true)
    assert.are.equal(0, f:seek("end"))
    f:close()
    local p = progress.new { what = "submit", unit = "lines", stream = s, on = true,
      clock = function() return t end }
    t = 102
    p:draw(50, 200, { "48 created", "2 failed" })
    assert.are.equal("\r\27[Ksubmit: 50/200 lines, 48 created, 2 failed, 25.0/s, ETA 6s", s.text())
    t = 102.05
    p:draw(51, 200, {})               -- too soon: not drawn
    assert.are.equal(1, select(2, s.text():gsub("\r", "")))
    t = 103
    p.free = 30                       -- lines that cost nothing (resumed) are not in the rate
    p:draw(60, nil, {})
    assert.matches("submit: 60 lines, 10%.0/s$", s.text())
    p:clear()
    assert.matches("\r\27%[K$", s.text())
    t = 4000
    p:draw(60, 60, {}, true)
    assert.matches("submit: 60/60 lines, 0%.0/s, 1h05m\n$", s.text())
  end)

  it("writes durations as s, m and h", function()
    assert.are.same({ "0s", "59s", "1m00s", "59m59s", "1h00m", "27h46m" },
      { progress.duration(0.4), progress.duration(59), progress.duration(60), progress.duration(3599),
        progress.duration(3600), progress.duration(100000) })
  end)
end)
