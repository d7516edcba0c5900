--- queue_jobs.cli.man: salad-jobs(1), the man page, made from the help texts of salad-jobs
-- (queue_jobs.cli): `make man` writes it (build/salad-jobs.1, tools/gen_man.lua) and `make
-- install` installs it (mk/install_cli.mk). Every text in it is a help text: the page and
-- --help say the same.
local fmt = string.format

local M = {}

-- Text as roff: backslashes escaped, a leading dot or quote kept from reading as a request,
-- dashes as \- (copied as ASCII hyphens).
local function roff(text)
  text = text:gsub("\\", "\\e"):gsub("%-", "\\-")
  return (text:gsub("^([.'])", "\\&%1"):gsub("\n([.'])", "\n\\&%1"))
end

-- The options of a --help text (the lines after "Options:"), as tagged paragraphs.
local function options(out, help)
  local at = help:find("\nOptions:\n", 1, true)
  if not at then return end
  for line in help:sub(at + 10):gmatch("[^\n]+") do
    local left, text = line:match("^  (%S.-)%s%s+(%S.*)$")
    if left then
      out[#out + 1] = ".TP"
      out[#out + 1] = "\\fB" .. roff(left) .. "\\fR"
      out[#out + 1] = roff(text)
    end
  end
end

-- The columns of a verbatim line at most: man indents a section's text by 7, and the page
-- must read in 80 columns (MANWIDTH=80).
M.WIDTH = 72

-- A line of a help text as lines of at most width characters, each cut at a space; the lines
-- after the first indented to the second column of a two-column line (a name, two spaces or
-- more, its text), else as the first is, and 4 more.
local function wrapped(line, width)
  local column = line:match("^(%s*%S+%s%s+)%S")
  local indent = column and (" "):rep(#column) or (line:match("^(%s*)") .. "    ")
  local lines = {}
  while #line > width do
    local cut = line:sub(1, width + 1):match("^.*%S()%s")   -- after the last word that fits
    if not cut or cut <= #indent then break end
    lines[#lines + 1] = line:sub(1, cut - 1)
    line = indent .. line:sub(cut):gsub("^%s+", "")
  end
  lines[#lines + 1] = line
  return lines
end

-- The part of a --help text before "Options:", as lines kept as they are (wrapped to M.WIDTH).
local function verbatim(out, help)
  local head = help:match("^(.-)\n\nOptions:\n") or help
  out[#out + 1] = ".nf"
  for line in (head .. "\n"):gmatch("([^\n]*)\n") do
    for _, l in ipairs(wrapped(line, M.WIDTH)) do out[#out + 1] = roff(l) end
  end
  out[#out + 1] = ".fi"
end

--- date(getenv) -> the page's date, YYYY-MM-DD, the same build after build: that of
-- $SOURCE_DATE_EPOCH (reproducible-builds.org), else of the checkout's last commit, else "".
function M.date(getenv)
  local epoch = tonumber(getenv("SOURCE_DATE_EPOCH") or "")
  if not epoch then
    local p = io.popen("git log -1 --format=%ct 2>/dev/null")
    epoch = p and tonumber(p:read("*a") or "")
    if p then p:close() end
  end
  return epoch and os.date("!%Y-%m-%d", math.floor(epoch)) or ""
end

--- page(cli [, getenv]) -> the text of salad-jobs.1 (getenv: os.getenv when not a function,
-- for its date; `page(require "queue_jobs.cli")` passes require's second result).
function M.page(cli, getenv)
  local version = cli.version_text():match("^salad%-jobs (%S+)") or "unknown"
  local out = {
    fmt('.TH SALAD\\-JOBS 1 "%s" "salad-jobs %s" "User Commands"',
      M.date(type(getenv) == "function" and getenv or os.getenv), roff(version)),
    ".SH NAME",
    "salad\\-jobs \\- SaladCloud Job Queue from the command line",
    ".SH SYNOPSIS",
  }
  local top = cli.usage_text()
  verbatim(out, top)
  out[#out + 1] = ".SH OPTIONS"
  options(out, top)
  out[#out + 1] = ".SH COMMANDS"
  for _, c in ipairs(cli.COMMANDS) do
    if c[2] then
      out[#out + 1] = ".SS " .. roff(c[1])
      local help = cli.help_text(c[1])
      verbatim(out, help)
      -- the command's own options: those not global, or global ones it words otherwise
      local own = {}
      local at = help:find("\nOptions:\n", 1, true)
      for line in help:sub(at + 10):gmatch("[^\n]+") do
        if not top:find("\n" .. line .. "\n", 1, true) then own[#own + 1] = line end
      end
      if #own > 0 then options(out, "x\n\nOptions:\n" .. table.concat(own, "\n")) end
    end
  end
  out[#out + 1] = ".SH ENVIRONMENT"
  for _, e in ipairs {
    { "SALAD_API_KEY", "the API key (or --api-key-file FILE, or the profile's api_key_file)" },
    { "SALAD_ORGANIZATION, SALAD_PROJECT, SALAD_BASE_URL", "as --organization, --project, --base-url" },
    { "SALAD_PROFILE", "as --profile" },
    { "XDG_CONFIG_HOME", "where the config file is (default ~/.config)" },
  } do
    out[#out + 1] = ".TP"
    out[#out + 1] = "\\fB" .. roff(e[1]) .. "\\fR"
    out[#out + 1] = roff(e[2])
  end
  out[#out + 1] = ".SH FILES"
  out[#out + 1] = ".TP"
  out[#out + 1] = "\\fI$XDG_CONFIG_HOME/salad\\-jobs/config.ini\\fR"
  out[#out + 1] = roff("profiles: [default] and [profile NAME] sections of organization, project, " ..
    "base_url, api_key_file, rate_limit (and api_key, in a file only its owner can read); " ..
    "flags and the environment override them. Refused when its group or others may write it " ..
    "or another user than root owns it; an api_key_file must be private (chmod 600).")
  return table.concat(out, "\n") .. "\n"
end

return M
