-- scripts/dev.lua — what `make run` starts (after make has built everything):
-- the fake Connect and the platform configured against each other on
-- loopback, or the platform alone against Stripe when STRIPE_SECRET_KEY and
-- STRIPE_CLIENT_ID are set in the environment.
--
--   PORT (default 8080)        the platform: http://127.0.0.1:PORT/
--   FAKE_PORT (default 12111)  the fake Connect
--   DATA_DIR (default data)    secrets, admin token, SQLite database, supervisor file
--   DATABASE (default sqlite:DATA_DIR/connect.db), POLICY, STATE_TTL, … pass through.
--
-- State secrets, an admin token and the token encryption key (TOKEN_KEYS) are
-- generated once into data/ (mode 0600)
-- and reused.  Both servers run under one bash supervisor in the foreground:
-- Ctrl-C (SIGINT to the foreground process group) reaches it, and its trap
-- stops both children with SIGTERM (background children of a non-interactive
-- shell ignore SIGINT themselves, so the trap does it for them).
local core = require "stripe_connect.core"

local function getenv(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local function die(msg)
  io.stderr:write("make run: ", msg, "\n")
  os.exit(1)
end

local function sh_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- read_or_create(path, make) -> the file's first line; creates it (0600) once.
local function read_or_create(path, make)
  local f = io.open(path, "r")
  if f then
    local v = f:read("l")
    f:close()
    if v and v ~= "" then return v end
  end
  local value = make()
  local ok = os.execute("umask 077 && printf '%s\\n' " .. sh_quote(value) .. " > " .. sh_quote(path))
  if not ok then die("cannot write " .. path) end
  return value
end

local port = getenv("PORT", "8080")
local fake_port = getenv("FAKE_PORT", "12111")
if not port:match("^%d+$") or not fake_port:match("^%d+$") then die("PORT and FAKE_PORT must be numbers") end
local data = getenv("DATA_DIR", "data")
if not os.execute("umask 077 && mkdir -p " .. sh_quote(data)) then die("cannot create " .. data) end

local state_secrets = read_or_create(data .. "/state_secrets", function()
  return "k1:" .. core.base64url_encode(core.random_bytes(32))
end)
local admin_token = read_or_create(data .. "/admin_token", function()
  return core.base64url_encode(core.random_bytes(24))
end)
-- The key the accounts' tokens are encrypted under at rest (TOKEN_KEYS).
local token_keys_file = data .. "/token_keys"
read_or_create(token_keys_file, function() return require("stripe_connect.tokens").new_key("k1") end)

local bin = "build/stripe-connect"
local platform_url = "http://127.0.0.1:" .. port
local real = os.getenv("STRIPE_SECRET_KEY") and os.getenv("STRIPE_CLIENT_ID")
local env = {
  PUBLIC_URL = getenv("PUBLIC_URL", platform_url),
  STATE_SECRETS = getenv("STATE_SECRETS", state_secrets),
  ADMIN_TOKEN = getenv("ADMIN_TOKEN", admin_token),
  DATABASE = getenv("DATABASE", "sqlite:" .. data .. "/connect.db"),
}
if not os.getenv("TOKEN_KEYS") then env.TOKEN_KEYS_FILE = getenv("TOKEN_KEYS_FILE", token_keys_file) end
local fake_url = "http://127.0.0.1:" .. fake_port
local fake_env
if not real then
  local key, client, whsec = "sk_test_fake_development_key", "ca_fake_development_client", "whsec_fake_development_secret"
  env.STRIPE_SECRET_KEY, env.STRIPE_CLIENT_ID = key, client
  env.STRIPE_CONNECT_BASE, env.STRIPE_API_BASE = fake_url, fake_url
  env.STRIPE_WEBHOOK_SECRETS = whsec
  fake_env = {
    FAKE_CLIENT_ID = client, FAKE_SECRET_KEY = key, FAKE_WEBHOOK_SECRETS = whsec,
    FAKE_REDIRECT_URIS = env.PUBLIC_URL .. "/oauth/callback",
    FAKE_WEBHOOK_URL = platform_url .. "/webhooks",
  }
end

-- Settings travel as exports in the 0600 supervisor file, never on a
-- command line (where `ps` would show the secrets).
local function env_prefix(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = "export " .. k .. "=" .. sh_quote(v) .. ";" end
  table.sort(parts)
  return "(" .. table.concat(parts, " ") .. " exec"
end

-- run.env: the settings the scripts need to reach the same store and
-- Stripe (or fake), for `make accounts` and `set -a; . data/run.env`: the
-- non-secret settings and the paths of the secret files, never a secret
-- itself (the fake's development key is no secret).  Created 0600.
local run_env = data .. "/run.env"
do
  local names = { "PUBLIC_URL", "DATABASE", "STRIPE_CLIENT_ID", "STRIPE_CONNECT_BASE", "STRIPE_API_BASE",
    "TOKEN_KEYS_FILE" }
  local out = { "# written by make run (scripts/dev.lua); read by make accounts" }
  for _, k in ipairs(names) do
    local v = env[k] or (k == "STRIPE_CLIENT_ID" and os.getenv(k))
    if v then out[#out + 1] = k .. "=" .. sh_quote(v) end
  end
  if fake_env then out[#out + 1] = "STRIPE_SECRET_KEY=" .. sh_quote(env.STRIPE_SECRET_KEY) end
  if not os.getenv("STATE_SECRETS") then out[#out + 1] = "STATE_SECRETS_FILE=" .. sh_quote(data .. "/state_secrets") end
  if not os.getenv("ADMIN_TOKEN") then out[#out + 1] = "ADMIN_TOKEN_FILE=" .. sh_quote(data .. "/admin_token") end
  os.remove(run_env)
  if not os.execute("umask 077 && set -C && : > " .. sh_quote(run_env)) then die("cannot write " .. run_env) end
  local ef = assert(io.open(run_env, "w"))
  ef:write(table.concat(out, "\n"), "\n")
  ef:close()
end

-- The supervisor: start, wait for readiness (curl with a deadline), print
-- the URL, then wait until a child exits or Ctrl-C; stop both either way.
local script = {
  "set -u",
  "pids=''",
  "stop() { trap - INT TERM EXIT; [ -n \"$pids\" ] && kill $pids 2>/dev/null; wait 2>/dev/null; }",
  "trap 'echo; echo \"make run: stopping\" >&2; stop; exit 0' INT TERM",
  "trap stop EXIT",
  "ready() { for _ in $(seq 1 100); do curl -fsS -o /dev/null \"$1\" 2>/dev/null && return 0;" ..
    " kill -0 $2 2>/dev/null || return 1; sleep 0.1; done; return 1; }",
}
local function add(line) script[#script + 1] = line end
if fake_env then
  add(env_prefix(fake_env) .. " " .. bin .. " serve scripts/fake_connect.lua --listen 127.0.0.1:" ..
    fake_port .. " --workers 1) & fpid=$!; pids=\"$pids $fpid\"")
  add("ready " .. sh_quote(fake_url .. "/__fake/requests") .. " $fpid || { echo 'make run: the fake Connect did not start" ..
    " (is port " .. fake_port .. " in use? set FAKE_PORT)' >&2; exit 1; }")
end
add(env_prefix(env) .. " " .. bin .. " serve scripts/platform.lua --listen 127.0.0.1:" .. port ..
  ") & ppid=$!; pids=\"$pids $ppid\"")
add("ready " .. sh_quote(platform_url .. "/healthz") .. " $ppid || { echo 'make run: the platform did not start" ..
  " (see above; is port " .. port .. " in use? set PORT)' >&2; exit 1; }")
add("echo")
if fake_env then
  add("echo 'Running offline against the fake Connect at " .. fake_url .. " (SQLite: " .. env.DATABASE .. ")'")
else
  add("echo 'Running against Stripe (" .. env.PUBLIC_URL .. "/oauth/callback must be a redirect URI of your Connect settings)'")
end
add("echo 'open " .. platform_url .. "/'")
local lines = {
  "platform:      " .. platform_url .. "/  (health " .. platform_url .. "/healthz, metrics " .. platform_url .. "/metrics)",
  fake_env and ("fake Connect:  " .. fake_url .. "/  (consent page, Approve/Deny; requests at " .. fake_url ..
    "/__fake/requests)") or nil,
  "admin:         " .. platform_url .. "/admin  (sign in with the token in " .. data .. "/admin_token)",
  "data:          " .. data .. "/  (" .. env.DATABASE .. "; state_secrets, admin_token, token_keys: 0600)",
  "settings:      " .. run_env .. "  (make accounts, or `set -a; . " .. run_env .. "` before a script)",
  fake_env and "real Stripe:   STRIPE_SECRET_KEY=sk_test_… STRIPE_CLIENT_ID=ca_… make run  (register " ..
    env.PUBLIC_URL .. "/oauth/callback as a redirect URI first)" or nil,
  "Ctrl-C stops everything",
}
for _, l in ipairs(lines) do if l then add("echo " .. sh_quote(l)) end end
add("echo")
-- A server that exits on its own with 0 (or 130) was stopped by Ctrl-C too:
-- the servers handle SIGINT themselves, also where the supervisor inherited
-- it ignored (started in the background by a script).
add("wait -n; rc=$?; stop")
add("case $rc in 0|130) echo; echo 'make run: stopped' >&2; exit 0;; esac")
add("echo \"make run: a server exited (status $rc); stopped the other\" >&2; exit 1")

-- The supervisor file holds the secrets: created 0600 (umask 077, and
-- noclobber so it is a new file), only then written.
local run_file = data .. "/.run.sh"
os.remove(run_file)
if not os.execute("umask 077 && set -C && : > " .. sh_quote(run_file)) then die("cannot write " .. run_file) end
local f = assert(io.open(run_file, "w"))
f:write(table.concat(script, "\n"), "\n")
f:close()
local ok, how, code = os.execute("exec bash " .. run_file)
if how == "exit" then os.exit(code) end
os.exit(ok and 0 or 1)
