-- util.redact and the platform's log wiring.  Named after the bug: a policy
-- hook that raised with a token, a code or a configured secret in its message
-- had that text written verbatim to the server's stderr.
local lu = require "luaunit"
local util = require "stripe_connect.util"
local cli = require "stripe_connect.cli"

local SK = "sk_test_51Hredactme0123456789"
local STATE = ("s"):rep(40)
local ADMIN = "admin-token-0123456789"
local WHSEC = "whsec_redact0123456789"

local TestRedact = {}

function TestRedact.test_rows()
  local secrets = { "plain-secret-value", "short" }
  local rows = {
    { "secret key", "key " .. SK .. " end", "key sk_test_[redacted] end" },
    { "live key", "sk_live_abcDEF123_x", "sk_live_[redacted]" },
    { "restricted key", "rk_test_abc123", "rk_test_[redacted]" },
    { "webhook secret", "secret=" .. WHSEC, "secret=whsec_[redacted]" },
    { "code", "code=ac_0123456789abcdef0123&x", "code=ac_[redacted]&x" },
    { "refresh token", "rt_0123456789abcdef0123", "rt_[redacted]" },
    { "short ac_ id kept", "ac_123", "ac_123" },
    { "account id kept", "acct_1Fg9jUA3kq9o1aTc", "acct_1Fg9jUA3kq9o1aTc" },
    { "configured secret", "x plain-secret-value y", "x [redacted] y" },
    { "short configured secret not matched", "short", "short" },
    { "non-string", 42, "42" },
  }
  for _, r in ipairs(rows) do
    lu.assertEquals(util.redact(r[2], secrets), r[3], r[1])
  end
  lu.assertEquals(util.redact("x a.b*c+d%e y", { "a.b*c+d%e" }), "x [redacted] y", "pattern characters are literal")
end

-- core.redact itself: a prefix counts at the start of a word only, and the
-- rest of the word (underscores too) is masked; plain text, not a pattern.
function TestRedact.test_core_redact_word_starts()
  local core = require "stripe_connect.core"
  local rows = {
    { "xsk_test_abc", "xsk_test_abc" },
    { "(sk_test_abc)", "(sk_test_[redacted])" },
    { "rt_abc_0123456789abcdef", "rt_[redacted]" },
    { "task_0123456789abcdefghij", "task_0123456789abcdefghij" },
    { "sk_test_", "sk_test_" },
    { "a sk_live_1 b whsec_2 c", "a sk_live_[redacted] b whsec_[redacted] c" },
    { "", "" },
  }
  for _, r in ipairs(rows) do lu.assertEquals(core.redact(r[1]), r[2], r[1]) end
  lu.assertEquals(core.redact("a%sb%sc", { "%s%s%s%s" }), "a%sb%sc")
  lu.assertEquals(core.redact("x12345678x12345678", { "12345678" }), "x[redacted]x[redacted]")
  lu.assertError(core.redact, {})
  lu.assertEquals(core.redact("code abc here", { "abc" }), "code abc here", "short: left by default")
  lu.assertEquals(core.redact("code abc here abc", { "abc" }, 1), "code [redacted] here [redacted]")
  lu.assertError(core.redact, "x", { "x" }, 0)
end

-- The platform built by cli.from_env logs a raising policy hook through the
-- redactor, with every configured secret masked.
function TestRedact.test_policy_hook_error_is_redacted_in_the_log()
  local dir = os.tmpname()
  os.remove(dir)
  local policy_path = dir .. ".lua"
  local f = assert(io.open(policy_path, "w"))
  f:write(string.format([[
return { on_connected = function()
  error("boom %s %s %s %s code=ac_0123456789abcdef0123 rt_0123456789abcdef0123")
end }
]], SK, STATE, ADMIN, WHSEC))
  f:close()
  local env = {
    STRIPE_SECRET_KEY = SK, STRIPE_CLIENT_ID = "ca_abc123", PUBLIC_URL = "http://127.0.0.1:8080",
    STATE_SECRETS = "k1:" .. STATE, DATABASE = "memory:", POLICY = policy_path,
    ADMIN_TOKEN = ADMIN, STRIPE_WEBHOOK_SECRETS = WHSEC,
  }
  local built = cli.from_env(function(k) return env[k] end)
  local lines = {}
  local real_stderr = io.stderr
  io.stderr = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end }
  local ok, err = pcall(built.policy.on_connected, { id = "acct_1" }, {})
  io.stderr = real_stderr
  os.remove(policy_path)
  lu.assertTrue(ok, tostring(err))
  local text = table.concat(lines)
  lu.assertStrContains(text, "policy hook on_connected failed")
  for _, secret in ipairs({ SK, STATE, ADMIN, WHSEC, "ac_0123456789abcdef0123", "rt_0123456789abcdef0123" }) do
    lu.assertNil(text:find(secret, 1, true), "leaked: " .. secret)
  end
end

return { TestRedact = TestRedact }
