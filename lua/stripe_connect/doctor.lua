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

function M.check(opts)
  opts = util.check_opts(opts, { getenv = true, offline = true, ca_file = true, http = true, now = true }, "doctor.check")
  local getenv = opts.getenv or os.getenv
  local findings, checked, reported = {}, {}, {}
  local function env(name)
    local v = getenv(name)
    if v and v:match("^%s*$") then v = nil end
    return v and v:match("^%s*(.-)%s*$") or nil
  end
  local function find(id, setting, problem, fix)
    findings[#findings + 1] = { id = id, setting = setting, problem = problem, fix = fix }
    reported[setting] = true
  end
  local function check(id) checked[#checked + 1] = id end

  local cfg, problems = config.load(getenv)
  local key = env("STRIPE_SECRET_KEY") or (cfg and cfg.secret_key) or ""
  local live = key:match("^[sr]k_live_") ~= nil

  check("state_secrets")
  local secrets = env("STATE_SECRETS")
  if not secrets and not env("STATE_SECRETS_FILE") then
    find("state_secrets_missing", "STATE_SECRETS", "no state secret is set; a secret made per process differs " ..
      "between workers and hosts, so a callback landing on another one fails",
      "generate one once and give every worker and host the same: " ..
      "STATE_SECRETS=k1:$(head -c 32 /dev/urandom | base64 | tr -d =)")
  elseif secrets and not require("stripe_connect.state").keyring(secrets) then
    find("state_secrets_short", "STATE_SECRETS", "the state secrets are not kid:secret entries of at least 32 bytes",
      "STATE_SECRETS=k1:$(head -c 32 /dev/urandom | base64 | tr -d =)")
  end

  check("public_url")
  local public = env("PUBLIC_URL")
  if public and not is_absolute(public) then
    find("public_url_not_absolute", "PUBLIC_URL", "PUBLIC_URL is not an absolute http(s) URL: " .. public,
      "set the origin browsers use, e.g. PUBLIC_URL=https://platform.example")
  elseif public and live and not public:match("^https://") then
    find("public_url_not_https", "PUBLIC_URL", "a live key with an http PUBLIC_URL: Stripe redirects live " ..
      "connections to https only, and the cookies would travel in clear", "serve behind TLS and set PUBLIC_URL=https://…")
  end
  for uri in (env("REDIRECT_URIS") or ""):gmatch("[^,%s]+") do
    if not is_absolute(uri) then
      find("redirect_uri_not_absolute", "REDIRECT_URIS", "not an absolute URL: " .. uri,
        "list absolute URLs registered in the Dashboard (Connect → Settings → Redirects)")
    elseif live and not uri:match("^https://") then
      find("redirect_uri_not_https", "REDIRECT_URIS", "a live key with an http redirect URI: " .. uri,
        "use https redirect URIs in live mode")
    end
  end

  check("webhook_secrets")
  if not env("STRIPE_WEBHOOK_SECRETS") and not env("STRIPE_WEBHOOK_SECRETS_FILE") then
    find("webhook_secrets_missing", "STRIPE_WEBHOOK_SECRETS", "no webhook signing secret: /webhooks is off, so " ..
      "an account disconnected in Stripe's Dashboard stays connected here",
      "add an endpoint for account.application.deauthorized at PUBLIC_URL/webhooks and set " ..
      "STRIPE_WEBHOOK_SECRETS=whsec_… (its signing secret)")
  end

  check("stripe_bases")
  for _, name in ipairs({ "STRIPE_CONNECT_BASE", "STRIPE_API_BASE" }) do
    local v = env(name)
    if live and v and not v:match("^https://") then
      find("stripe_base_not_https", name, name .. " is not https with a live key: " .. v,
        "unset " .. name .. " (Stripe's https default) or give an https URL")
    end
  end

  check("ca_bundle")
  local ca = opts.ca_file or M.CA_FILE
  if not exists(ca) then
    find("ca_bundle_missing", "CA bundle", "no CA bundle at " .. ca .. ": every call to Stripe fails TLS verification",
      "install it: apt-get install ca-certificates")
  end

  check("store")
  local path = (env("DATABASE") or config.DEFAULTS.DATABASE):match("^sqlite:(.+)$")
  if path then
    path = path:gsub("^//", "")
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
      find("store_not_writable", "DATABASE", "the store " .. path .. " (or its folder " .. dir .. ") is not writable " ..
        "by this user", "create the folder and give it to the service's user, mode 0700 (systemd: StateDirectory=)")
    end
    for _, p in ipairs({ path, path .. "-wal", path .. "-shm" }) do
      local mode = exists(p) and mode_of(p)
      if mode and (math.floor(mode / 32) % 2 == 1 or math.floor(mode / 4) % 2 == 1) then -- 0040 or 0004: group or others read
        find("store_readable_by_others", "DATABASE", string.format("%s is mode %o: other users can read the " ..
          "tokens in it", p, mode), "chmod 600 " .. p)
      end
    end
  end

  -- Whatever else config.load refuses, once per setting not reported above.
  for _, problem in ipairs(problems or {}) do
    local setting = problem:match("^([%u_]+)")
    if not (setting and (reported[setting] or reported[setting:gsub("_FILE$", "")])) then
      find("config", setting or "settings", problem, "set it as the problem says (README.md: the settings table)")
    end
  end

  if not opts.offline then
    check("clock")
    local base = (env("STRIPE_CONNECT_BASE") or config.DEFAULTS.STRIPE_CONNECT_BASE):gsub("/+$", "")
    local http = opts.http or require("stripe_connect.core").http_request
    local res, err = http{ url = base .. "/", method = "HEAD", timeout = 10, connect_timeout = 5 }
    local date = res and res.headers and (res.headers["date"] or res.headers["Date"])
    local t = date and M.http_date(type(date) == "table" and date[1] or date)
    if not t then
      find("connect_base_unreachable", "STRIPE_CONNECT_BASE", "no Date from " .. base .. " (" ..
        tostring(err or (res and ("HTTP " .. tostring(res.status))) or "no answer") .. ")",
        "check the network and STRIPE_CONNECT_BASE, or run with --offline")
    else
      local skew = (opts.now or os.time)() - t
      if math.abs(skew) > M.MAX_SKEW then
        find("clock_skewed", "clock", string.format("this clock is %d s %s %s's", math.abs(skew),
          skew > 0 and "ahead of" or "behind", base), "run an NTP client (systemd-timesyncd, chrony)")
      end
    end
  end
  return { findings = findings, checked = checked }
end

return M
