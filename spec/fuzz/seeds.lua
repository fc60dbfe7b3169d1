-- spec/fuzz/seeds.lua — writes the seed corpora spec/fuzz/corpus/<target>/
-- (committed; run again after changing it:
-- `build/stripe-connect run spec/fuzz/seeds.lua`).  Regression inputs from
-- crashes are added next to these by hand, named after the bug.
local core = require "stripe_connect.core"
local state = require "stripe_connect.state"

local function write(target, name, data)
  os.execute("mkdir -p spec/fuzz/corpus/" .. target)
  local f = assert(io.open("spec/fuzz/corpus/" .. target .. "/" .. name, "wb"))
  f:write(data)
  f:close()
end

local H = "Host: example.com\r\n"
local requests = {
  get = "GET /connect?return_to=%2Fdone HTTP/1.1\r\n" .. H .. "Cookie: sc_bind=abc; x=\"q\"\r\n\r\n",
  post_cl = "POST /webhooks HTTP/1.1\r\n" .. H .. "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
  chunked = "POST /webhooks HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
  pipelined = "GET /a HTTP/1.1\r\n" .. H .. "\r\nGET /b HTTP/1.1\r\n" .. H .. "Connection: close\r\n\r\n",
  http10 = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
  expect = "POST /admin/login HTTP/1.1\r\n" .. H .. "Expect: 100-continue\r\nContent-Length: 7\r\n\r\ntoken=x",
  probe = "POST /echo HTTP/1.1\r\n" .. H .. "Transfer-Encoding: chunked\r\n\r\n27;\n" .. ("G"):rep(39) .. "\r\n0\r\n\r\n",
  star = "OPTIONS * HTTP/1.1\r\n" .. H .. "\r\n",
}
for name, r in pairs(requests) do
  write("fuzz_request", name, "\7\0" .. r)
  write("fuzz_request", name .. "_bytewise", "\0\1" .. r)
end

local chunked = {
  simple = "5\r\nhello\r\n0\r\n\r\n",
  ext = "5 ; a = b ;c=\"q\\\"x\"\r\nhello\r\n7;x\r\n, world\r\n0;last\r\n\r\n",
  trailer = "3\r\nabc\r\n0\r\nX-A: 1\r\nX-B:\r\n\r\n",
  upper = "A\r\n0123456789\r\n0\r\n\r\n",
  probe = "27;\n" .. ("G"):rep(39) .. "\r\n0\r\n\r\n",
  line = "1f;name=\"v\"",
}
for name, c in pairs(chunked) do write("fuzz_chunked", name, c) end

for name, q in pairs({ plain = "a=1&b=2&a=3", escapes = "email=a%40b.c&x=%E2%82%AC+y&&=z&flag",
                       bad = "a=%zz&b=%4", brackets = "stripe_user[email]=x&scope=read_write" }) do
  write("fuzz_query", name, q)
  write("fuzz_form", name, q)
end
for name, c in pairs({ two = "sc_bind=abc; __Host-sc_admin=\"xyz\"", spaced = " a = 1 ;; b=2 ; c",
                       dup = "a=1; a=2; a=3" }) do
  write("fuzz_cookie", name, c)
end
for name, s in pairs({ plain = "hello world", escapes = "%41%42%2fx+y%e2%82%ac", bad = "%G1%", empty = "" }) do
  write("fuzz_percent", name, s)
end
for name, s in pairs({ std = "aGVsbG8gd29ybGQ=", url = "aGVsbG8_d29ybGQ-", pad2 = "QQ==", hex = "00ff10Ab",
                       noncanon = "QR==", bin = "\0\1\2\255" }) do
  write("fuzz_base64", name, s)
end
for name, s in pairs({ keys = "key sk_test_51Habc123 and rk_live_x9 whsec_abc_def\n",
                       codes = "code=ac_0123456789abcdef0123&rt=rt_0123456789abcdef0123 acct_1Fg9jUA3kq9o1aTc",
                       mixed = "12345678 sk_test_12345678 [redacted] xsk_live_1 (whsec_2)" }) do
  write("fuzz_redact", name, s)
end
write("fuzz_form_encode", "flat", "a\0001\0b\0x y\0c[d]\0%&=")
write("fuzz_form_encode", "nested", "k\0v\0email\0a@b\0x\0\0y\0z")

local t = 1700000000
local payload = '{"id":"evt_1","object":"event","type":"account.updated"}'
local function sig(secret, ts, body)
  return core.hex_encode(core.hmac_sha256(secret, ts .. "." .. body))
end
write("fuzz_webhook", "valid", payload .. "\nt=" .. t .. ",v1=" .. sig("whsec_fuzz_secret", t, payload))
write("fuzz_webhook", "rotated", payload .. "\nt=" .. t .. ",v1=" .. ("0"):rep(64) .. ", v1="
  .. sig("whsec_fuzz_rotated", t, payload) .. ",v0=abc")
write("fuzz_webhook", "old", payload .. "\nt=" .. (t - 1000) .. ",v1=" .. sig("whsec_fuzz_secret", t - 1000, payload))
write("fuzz_webhook", "malformed", payload .. "\nt=01,t=2,v1=zz,=,,")

local kr = assert(state.keyring("k1:" .. ("f"):rep(43) .. ",k0:" .. ("e"):rep(43)))
local binding = ("B"):rep(32)
local tok = state.mint(kr, { binding = binding, now = t, return_to = "/done?x=1" })
write("fuzz_state", "valid", binding .. "\n" .. tok)
write("fuzz_state", "v2", binding .. "\n" .. state.mint(kr, { binding = binding, now = t, owner = "user-7",
  account = "acct_123" }))
write("fuzz_state", "other_browser", ("C"):rep(32) .. "\n" .. tok)
write("fuzz_state", "garbage", binding .. "\nv1.k1.x.y.z..sig")
print("seeds written")
