-- stripe_connect.doctor — the platform's configuration checked against the
-- known traps, each finding with its fix (scripts/doctor.lua prints them).
--
--   doctor.check{ getenv = os.getenv, offline = false, ca_file = "/etc/ssl/…",
--                 http = core.http_request, now = os.time }
--   -> { findings = { { id, setting, problem, fix }, … }, checked = { id, … } }
--
-- The traps (finding ids):
--   state_secrets_missing, state_secrets_short   STATE_SECRETS (one per process
--                                   breaks several workers and hosts)
--   public_url_not_absolute, public_url_not_https, redirect_uri_not_absolute,
--   redirect_uri_not_https          PUBLIC_URL / REDIRECT_URIS (https with a live key)
--   webhook_secrets_missing         STRIPE_WEBHOOK_SECRETS
--   stripe_base_not_https           STRIPE_CONNECT_BASE / STRIPE_API_BASE with a live key
--   ca_bundle_missing               the CA bundle libcurl verifies Stripe with
--   store_not_writable, store_readable_by_others   DATABASE's file and folder
--   clock_skewed, connect_base_unreachable   the Date header of the connect base
--                                   (the one network call; not with offline)
--   config                          any other setting config.load refuses
local config = require "stripe_connect.config"
local util = require "stripe_connect.util"

local M = {}

-- Debian's bundle (ca-certificates), the one its libcurl is built with.
M.CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
-- Seconds of clock difference from Stripe that count as skewed (states
-- and webhook signatures carry times; Stripe's tolerance is 300 s).
M.MAX_SKEW = 30

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6, Jul = 7, Aug = 8, Sep = 9, Oct = 10,
  Nov = 11, Dec = 12 }

-- http_date(s) -> Unix seconds of an IMF-fixdate ("Wed, 02 Dec 2026 12:29:38 GMT") | nil
function M.http_date(s)
  local d, mon, y, hh, mm, ss = tostring(s):match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTHS[mon]
  if not m then return nil end
  y, m, d = tonumber(y), m, tonumber(d)
  -- days from civil (Howard Hinnant's algorithm), UTC without os.time's local zone
  y = m <= 2 and y - 1 or y
  local era = math.floor((y >= 0 and y or y - 399) / 400)
  local yoe = y - era * 400
  local doy = math.floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)
end

local function is_absolute(u)
  return type(u) == "string" and u:match("^https?://[^/%s]+") ~= nil
end

-- The octal mode of path (via stat(1)) | nil
local function mode_of(path)
  local p = io.popen("stat -c %a " .. "'" .. path:gsub("'", "'\\''") .. "' 2>/dev/null")
  if not p then return nil end
  local out = p:read("a")
  p:close()
  return tonumber(out:match("^(%d+)"), 8)
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close(); return true end
  return false
end

-- A Run: one check's settings and findings.  run:env(name) is the setting
-- trimmed (nil when unset or blank); run:find(…) records a finding.
local Run = {}
Run.__index = Run

function Run:env(name)
  local v = self.getenv(name)
  if v and v:match("^%s*$") then v = nil end
  return v and v:match("^%s*(.-)%s*$") or nil
end

function Run:find(id, setting, problem, fix)
  self.findings[#self.findings + 1] = { id = id, setting = setting, problem = problem, fix = fix }
  self.reported[setting] = true
end

local function state_secrets(run)
  local secrets = run:env("STATE_SECRETS")
  if not secrets and not run:env("STATE_SECRETS_FILE") then
    run:find("state_secrets_missing", "STATE_SECRETS", "no state secret is set; a secret made per process differs " ..
      "between workers and hosts, so a callback landing on another one fails",
      "generate one once and give every worker and host the same: " ..
      "STATE_SECRETS=k1:$(head -c 32 /dev/urandom | base64 | tr -d =)")
  elseif secrets and not require("stripe_connect.state").keyring(secrets) then
    run:find("state_secrets_short", "STATE_SECRETS", "the state secrets are not kid:secret entries of at least 32 bytes",
      "STATE_SECRETS=k1:$(head -c 32 /dev/urandom | base64 | tr -d =)")
  end
end

local function public_url(run)
  local public = run:env("PUBLIC_URL")
  if public and not is_absolute(public) then
    run:find("public_url_not_absolute", "PUBLIC_URL", "PUBLIC_URL is not an absolute http(s) URL: " .. public,
      "set the origin browsers use, e.g. PUBLIC_URL=https://platform.example")
  elseif public and run.live and not public:match("^https://") then
    run:find("public_url_not_https", "PUBLIC_URL", "a live key with an http PUBLIC_URL: Stripe redirects live " ..
      "connections to https only, and the cookies would travel in clear", "serve behind TLS and set PUBLIC_URL=https://…")
  end
  for uri in (run:env("REDIRECT_URIS") or ""):gmatch("[^,%s]+") do
    if not is_absolute(uri) then
      run:find("redirect_uri_not_absolute", "REDIRECT_URIS", "not an absolute URL: " .. uri,
        "list absolute URLs registered in the Dashboard (Connect → Settings → Redirects)")
    elseif run.live and not uri:match("^https://") then
      run:find("redirect_uri_not_https", "REDIRECT_URIS", "a live key with an http redirect URI: " .. uri,
        "use https redirect URIs in live mode")
    end
  end
end

local function webhook_secrets(run)
  if not run:env("STRIPE_WEBHOOK_SECRETS") and not run:env("STRIPE_WEBHOOK_SECRETS_FILE") then
    run:find("webhook_secrets_missing", "STRIPE_WEBHOOK_SECRETS", "no webhook signing secret: /webhooks is off, so " ..
      "an account disconnected in Stripe's Dashboard stays connected here",
      "add an endpoint for account.application.deauthorized at PUBLIC_URL/webhooks and set " ..
      "STRIPE_WEBHOOK_SECRETS=whsec_… (its signing secret)")
  end
end

local function stripe_bases(run)
  for _, name in ipairs({ "STRIPE_CONNECT_BASE", "STRIPE_API_BASE" }) do
    local v = run:env(name)
    if run.live and v and not v:match("^https://") then
      run:find("stripe_base_not_https", name, name .. " is not https with a live key: " .. v,
        "unset " .. name .. " (Stripe's https default) or give an https URL")
    end
  end
end

local function ca_bundle(run)
  local ca = run.opts.ca_file or M.CA_FILE
  if not exists(ca) then
    run:find("ca_bundle_missing", "CA bundle", "no CA bundle at " .. ca .. ": every call to Stripe fails TLS verification",
      "install it: apt-get install ca-certificates")
  end
end

-- The SQLite file's folder and the file itself writable (a probe file in
-- the folder; the file opened for update).
local function store_writable(run, path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local probe = dir .. "/.stripe-connect-doctor-" .. tostring(os.time()) .. "-" .. tostring(math.random(1e6))
  local f = io.open(probe, "w")
  if f then f:close(); os.remove(probe) end
  local file_ok = true
  if exists(path) then
    local rw = io.open(path, "r+b")
    if rw then rw:close() else file_ok = false end
  end
  if not f or not file_ok then
    run:find("store_not_writable", "DATABASE", "the store " .. path .. " (or its folder " .. dir .. ") is not writable " ..
      "by this user", "create the folder and give it to the service's user, mode 0700 (systemd: StateDirectory=)")
  end
end

local function store_file(run)
  local path = (run:env("DATABASE") or config.DEFAULTS.DATABASE):match("^sqlite:(.+)$")
  if not path then return end
  path = path:gsub("^//", "")
  store_writable(run, path)
  for _, p in ipairs({ path, path .. "-wal", path .. "-shm" }) do
    local mode = exists(p) and mode_of(p)
    if mode and (math.floor(mode / 32) % 2 == 1 or math.floor(mode / 4) % 2 == 1) then -- 0040 or 0004: group or others read
      run:find("store_readable_by_others", "DATABASE", string.format("%s is mode %o: other users can read the " ..
        "tokens in it", p, mode), "chmod 600 " .. p)
    end
  end
end

-- Whatever else config.load refuses, once per setting not reported above.
local function other_settings(run)
  for _, problem in ipairs(run.problems or {}) do
    local setting = problem:match("^([%u_]+)")
    if not (setting and (run.reported[setting] or run.reported[setting:gsub("_FILE$", "")])) then
      run:find("config", setting or "settings", problem, "set it as the problem says (README.md: the settings table)")
    end
  end
end

-- The clock against the Date header of the connect base (the one network call).
local function clock(run)
  local base = (run:env("STRIPE_CONNECT_BASE") or config.DEFAULTS.STRIPE_CONNECT_BASE):gsub("/+$", "")
  local http = run.opts.http or require("stripe_connect.core").http_request
  local res, err = http{ url = base .. "/", method = "HEAD", timeout = 10, connect_timeout = 5 }
  local date = res and res.headers and (res.headers["date"] or res.headers["Date"])
  local t = date and M.http_date(type(date) == "table" and date[1] or date)
  if not t then
    run:find("connect_base_unreachable", "STRIPE_CONNECT_BASE", "no Date from " .. base .. " (" ..
      tostring(err or (res and ("HTTP " .. tostring(res.status))) or "no answer") .. ")",
      "check the network and STRIPE_CONNECT_BASE, or run with --offline")
    return
  end
  local skew = (run.opts.now or os.time)() - t
  if math.abs(skew) > M.MAX_SKEW then
    run:find("clock_skewed", "clock", string.format("this clock is %d s %s %s's", math.abs(skew),
      skew > 0 and "ahead of" or "behind", base), "run an NTP client (systemd-timesyncd, chrony)")
  end
end

-- The checks, run in this order: id (listed in `checked`; none for
-- other_settings, which reports what the others did not), the function, and
-- online for the one that calls the network (skipped with offline).
local CHECKS = {
  { id = "state_secrets", run = state_secrets },
  { id = "public_url", run = public_url },
  { id = "webhook_secrets", run = webhook_secrets },
  { id = "stripe_bases", run = stripe_bases },
  { id = "ca_bundle", run = ca_bundle },
  { id = "store", run = store_file },
  { run = other_settings },
  { id = "clock", run = clock, online = true },
}

function M.check(opts)
  opts = util.check_opts(opts, { getenv = true, offline = true, ca_file = true, http = true, now = true }, "doctor.check")
  local run = setmetatable({ opts = opts, getenv = opts.getenv or os.getenv, findings = {}, reported = {} }, Run)
  local cfg
  cfg, run.problems = config.load(run.getenv)
  local key = run:env("STRIPE_SECRET_KEY") or (cfg and cfg.secret_key) or ""
  run.live = key:match("^[sr]k_live_") ~= nil
  local checked = {}
  for _, c in ipairs(CHECKS) do
    if not (c.online and opts.offline) then
      if c.id then checked[#checked + 1] = c.id end
      c.run(run)
    end
  end
  return { findings = run.findings, checked = checked }
end

return M
