--- queue_jobs.cli.tables: salad-jobs' --output table (docs/cli.md, "Output"): rows of text
-- under a header, each column as wide as its widest cell, two spaces between columns, the
-- last column not padded. Jobs and queues each have their columns; a field a row lacks shows
-- as "-".
--
-- A cell is text a server sent, shown on a terminal: the controls a terminal obeys are taken
-- out (C0 controls as a space; UTF-8's C1 controls and the bidi overrides and isolates, which
-- would reorder what the terminal shows, as PLACEHOLDER). Widths count UTF-8 characters (the
-- bytes that do not continue one), not bytes: a wide (CJK) character still counts as one
-- column. Given a limit, a longer cell is cut to it, its last character "…".
local tostring, type, pcall, select = tostring, type, pcall, select

local Tables = {}

-- The columns of a job and of a queue: {header, field}.
Tables.JOB = { { "ID", "id" }, { "STATUS", "status" }, { "CREATED", "create_time" },
  { "UPDATED", "update_time" } }
Tables.QUEUE = { { "NAME", "name" }, { "DISPLAY NAME", "display_name" },
  { "PENDING", "current_queue_length" }, { "CREATED", "create_time" } }

Tables.PLACEHOLDER = "\239\191\189"   -- U+FFFD, the replacement character
local PLACEHOLDER = Tables.PLACEHOLDER

--- Tables.MAX_CELL: the characters of a cell at most on a terminal (docs/cli.md, "Output").
Tables.MAX_CELL = 64

-- The characters of UTF-8 text s (the bytes not in 0x80..0xBF; portable to Lua 5.1).
local function chars(s)
  return #s - select(2, s:gsub("[\128-\191]", ""))
end
Tables.chars = chars

-- s cut to max characters, its last "…" when it was longer.
local function cut(s, max)
  if not max or chars(s) <= max then return s end
  local n = 0
  for start in s:gmatch("()[^\128-\191]") do
    n = n + 1
    if n == max then return s:sub(1, start - 1) .. "\226\128\166" end
  end
  return s
end

-- Text without the controls a terminal obeys (see the top of the file).
local function plain(s)
  s = s:gsub("[%c]", " ")
  s = s:gsub("\194[\128-\159]", PLACEHOLDER)          -- C1: U+0080..U+009F
  s = s:gsub("\226\128[\170-\174]", PLACEHOLDER)     -- U+202A..U+202E: embeddings, overrides
  s = s:gsub("\226\129[\166-\169]", PLACEHOLDER)     -- U+2066..U+2069: isolates
  return s
end
Tables.plain = plain

-- A cell's text: a string or a number as it is, one line; anything else "-".
local function cell(v)
  local t = type(v)
  if t == "string" then return plain(v) end
  if t == "number" then return tostring(v) end
  if t == "userdata" or t == "table" then   -- an exact number (exact_numbers) prints as its text
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" and s:find("^%-?[%d.eE+-]+$") then return s end
  end
  return "-"
end

--- lines(columns, records [, max]) -> the table's lines (the header first), without newlines;
-- max: the characters of a cell at most (nil: no limit).
function Tables.lines(columns, records, max)
  local rows = { {} }
  for i, c in ipairs(columns) do rows[1][i] = c[1] end
  for _, r in ipairs(records) do
    local row = {}
    for i, c in ipairs(columns) do row[i] = cut(cell(r[c[2]]), max) end
    rows[#rows + 1] = row
  end
  local width = {}
  for _, row in ipairs(rows) do
    for i, text in ipairs(row) do
      local n = chars(text)
      if not width[i] or n > width[i] then width[i] = n end
    end
  end
  local out = {}
  for k, row in ipairs(rows) do
    local parts = {}
    for i, text in ipairs(row) do
      parts[i] = i < #row and (text .. string.rep(" ", width[i] - chars(text))) or text
    end
    out[k] = table.concat(parts, "  ")
  end
  return out
end

return Tables
