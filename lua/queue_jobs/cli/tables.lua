--- queue_jobs.cli.tables: salad-jobs' --output table (docs/cli.md, "Output"): rows of text
-- under a header, each column as wide as its widest cell, two spaces between columns, the
-- last column not padded. Jobs and queues each have their columns; a field a row lacks shows
-- as "-".
local tostring, type, pcall = tostring, type, pcall

local Tables = {}

-- The columns of a job and of a queue: {header, field}.
Tables.JOB = { { "ID", "id" }, { "STATUS", "status" }, { "CREATED", "create_time" },
  { "UPDATED", "update_time" } }
Tables.QUEUE = { { "NAME", "name" }, { "DISPLAY NAME", "display_name" },
  { "PENDING", "current_queue_length" }, { "CREATED", "create_time" } }

-- A cell's text: a string or a number as it is, one line; anything else "-".
local function cell(v)
  local t = type(v)
  if t == "string" then return (v:gsub("[%c]", " ")) end
  if t == "number" then return tostring(v) end
  if t == "userdata" or t == "table" then   -- an exact number (exact_numbers) prints as its text
    local ok, s = pcall(tostring, v)
    if ok and type(s) == "string" and s:find("^%-?[%d.eE+-]+$") then return s end
  end
  return "-"
end

--- lines(columns, records) -> the table's lines (the header first), without newlines.
function Tables.lines(columns, records)
  local rows = { {} }
  for i, c in ipairs(columns) do rows[1][i] = c[1] end
  for _, r in ipairs(records) do
    local row = {}
    for i, c in ipairs(columns) do row[i] = cell(r[c[2]]) end
    rows[#rows + 1] = row
  end
  local width = {}
  for _, row in ipairs(rows) do
    for i, text in ipairs(row) do
      if not width[i] or #text > width[i] then width[i] = #text end
    end
  end
  local out = {}
  for k, row in ipairs(rows) do
    local parts = {}
    for i, text in ipairs(row) do
      parts[i] = i < #row and (text .. string.rep(" ", width[i] - #text)) or text
    end
    out[k] = table.concat(parts, "  ")
  end
  return out
end

return Tables
