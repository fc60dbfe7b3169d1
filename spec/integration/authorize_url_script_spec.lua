-- scripts/authorize_url.lua run through the host binary (io.popen): stdout,
-- stderr and exit codes.  Host only (needs popen's exit status, Lua 5.4).
local lu = require "luaunit"
local core = require "stripe_connect.core"

local TestAuthorizeUrlScript = {}

local BIN = os.getenv("STRIPE_CONNECT_BIN") or "build/stripe-connect"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

-- run(client_id, args) -> exit code, stdout, stderr.  client_id nil: unset.
local function run(client_id, args)
  local errfile = os.tmpname()
  local cmd = { client_id and ("STRIPE_CLIENT_ID=" .. quote(client_id)) or "env -u STRIPE_CLIENT_ID",
                quote(BIN), "run", "scripts/authorize_url.lua" }
  for _, a in ipairs(args or {}) do cmd[#cmd + 1] = quote(a) end
  local p = assert(io.popen(table.concat(cmd, " ") .. " 2>" .. quote(errfile), "r"))
  local out = p:read("a")
  local _, how, code = p:close()
  local f = assert(io.open(errfile, "r"))
  local err = f:read("a")
  f:close()
  os.remove(errfile)
  assert(how == "exit", "script killed by a signal")
  return code, out, err
end

local function query_of(out)
  local url = out:match("^(%S+)\n$")
  assert(url, "expected one URL line, got: " .. out)
  return url:match("^([^?]*)%?(.*)$")
end

function TestAuthorizeUrlScript.test_prints_the_link()
  local rows = {
    -- name, args, expected base, expected params (state checked apart)
    { "defaults", {}, "https://connect.stripe.com/oauth/authorize",
      { response_type = "code", client_id = "ca_123", scope = "read_write" } },
    { "issue example", { "--scope", "read_write", "--email", "jenny@example.com" },
      "https://connect.stripe.com/oauth/authorize",
      { response_type = "code", client_id = "ca_123", scope = "read_write",
        ["stripe_user[email]"] = "jenny@example.com" } },
    { "every option",
      { "--scope", "read_only", "--redirect-uri", "https://platform.example/cb", "--state", "s t",
        "--landing", "register", "--always-prompt", "--email=j@x.io", "--url", "https://j.example",
        "--country", "US", "--business-name", "J & Co", "--business-type", "llc",
        "--first-name", "Jenny", "--last-name", "Rosen", "--phone-number", "5551234567",
        "--connect-base", "http://127.0.0.1:9/" },
      "http://127.0.0.1:9/oauth/authorize",
      { response_type = "code", client_id = "ca_123", scope = "read_only",
        redirect_uri = "https://platform.example/cb", state = "s t", stripe_landing = "register",
        always_prompt = "true", ["stripe_user[email]"] = "j@x.io", ["stripe_user[url]"] = "https://j.example",
        ["stripe_user[country]"] = "US", ["stripe_user[business_name]"] = "J & Co",
        ["stripe_user[business_type]"] = "llc", ["stripe_user[first_name]"] = "Jenny",
        ["stripe_user[last_name]"] = "Rosen", ["stripe_user[phone_number]"] = "5551234567" } },
    { "express", { "--express", "--state", "x" }, "https://connect.stripe.com/express/oauth/authorize",
      { response_type = "code", client_id = "ca_123", scope = "read_write", state = "x" } },
  }
  for _, r in ipairs(rows) do
    local code, out, err = run("ca_123", r[2])
    lu.assertEquals(code, 0, r[1] .. ": " .. err)
    lu.assertEquals(err, "", r[1])
    local base, query = query_of(out)
    lu.assertEquals(base, r[3], r[1])
    local got = assert(core.parse_query(query))
    if not r[4].state then
      -- the default state: 24 random bytes, base64url
      lu.assertStrMatches(got.state, "^[%w_-]+$", nil, nil, r[1])
      lu.assertEquals(#got.state, 32, r[1])
      got.state = nil
    end
    lu.assertEquals(got, r[4], r[1])
  end
end

function TestAuthorizeUrlScript.test_random_state_differs_between_runs()
  local _, a = run("ca_123", {})
  local _, b = run("ca_123", {})
  lu.assertNotEquals(a, b)
end

function TestAuthorizeUrlScript.test_help()
  local code, out, err = run(nil, { "--help" })
  lu.assertEquals(code, 0)
  lu.assertStrContains(out, "usage:")
  lu.assertStrContains(out, "--redirect-uri")
  lu.assertEquals(err, "")
end

function TestAuthorizeUrlScript.test_bad_usage_exits_2()
  local rows = {
    -- name, client_id, args, message on stderr
    { "missing STRIPE_CLIENT_ID", nil, {}, "STRIPE_CLIENT_ID is not set" },
    { "empty STRIPE_CLIENT_ID", "", {}, "STRIPE_CLIENT_ID is not set" },
    { "unknown option", "ca_123", { "--bogus" }, "unknown option '--bogus'" },
    { "positional argument", "ca_123", { "extra" }, "unknown option 'extra'" },
    { "missing value", "ca_123", { "--scope" }, "--scope needs a value" },
    { "flag with a value", "ca_123", { "--express=yes" }, "--express takes no value" },
    { "given twice", "ca_123", { "--email", "a@b.c", "--email", "d@e.f" }, "--email given twice" },
    { "bad scope", "ca_123", { "--scope", "admin" }, 'scope must be "read_write" or "read_only"' },
    { "bad redirect_uri", "ca_123", { "--redirect-uri", "/cb" }, "redirect_uri must be an absolute" },
    { "bad landing", "ca_123", { "--landing", "home" }, "stripe_landing must be" },
    { "bad prefill", "ca_123", { "--business-type", "company" }, "stripe_user.business_type must be one of" },
    { "phone without country", "ca_123", { "--phone-number", "5551234567" }, "needs stripe_user.country" },
  }
  for _, r in ipairs(rows) do
    local code, out, err = run(r[2], r[3])
    lu.assertEquals(code, 2, r[1])
    lu.assertEquals(out, "", r[1])
    lu.assertStrContains(err, r[4], false, r[1])
    lu.assertStrContains(err, "usage:", false, r[1])
  end
end

return { TestAuthorizeUrlScript = TestAuthorizeUrlScript }
