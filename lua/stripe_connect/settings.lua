-- stripe_connect.settings — every environment setting the platform reads, in
-- one table: `stripe-connect help settings` prints it, and a spec checks it
-- against config.load (the names it asks for) and the README's table.
--
--   { name, default (nil: unset; "required"), example, file (NAME_FILE works too), text }
local M = {}

M.PLATFORM = {
  { name = "STRIPE_SECRET_KEY", default = "required", example = "sk_test_…", file = true,
    text = "the platform's secret key (token, refresh, deauthorize calls)" },
  { name = "STRIPE_CLIENT_ID", default = "required", example = "ca_…",
    text = "the Connect client id (Dashboard → Settings → Connect → OAuth)" },
  { name = "PUBLIC_URL", default = "required", example = "https://platform.example.com",
    text = "the origin browsers use, no path; https with a live key" },
  { name = "REDIRECT_URIS", default = "PUBLIC_URL/oauth/callback", example = "https://platform.example.com/oauth/callback",
    text = "comma list: the allow-list the redirect_uri is picked from" },
  { name = "STRIPE_CONNECT_BASE", default = "https://connect.stripe.com", example = "http://127.0.0.1:12111",
    text = "where /oauth/authorize, /oauth/token, /oauth/deauthorize live; https with a live key" },
  { name = "STRIPE_API_BASE", default = "https://api.stripe.com", example = "http://127.0.0.1:12111",
    text = "the API base (Account Links, admin sync, scripts/api.lua); https with a live key" },
  { name = "STATE_SECRETS", default = "required", example = "k1:$(head -c 32 /dev/urandom | base64 | tr -d =)", file = true,
    text = "kid:secret[,kid:secret…], each ≥ 32 bytes; the first mints, all verify" },
  { name = "STATE_TTL", default = "1800", example = "600", text = "seconds a state stays valid (1–86400)" },
  { name = "DATABASE", default = "sqlite:data/connect.db", example = "postgres://user:pass@db:5432/connect",
    text = "sqlite:PATH, memory: or postgres://…" },
  { name = "ADMIN_TOKEN", example = "$(openssl rand -hex 16)", file = true,
    text = "≥ 128 bits; without it the admin routes are 404" },
  { name = "STRIPE_WEBHOOK_SECRETS", example = "whsec_…", file = true,
    text = "whsec_…[,whsec_…]; mounts POST /webhooks" },
  { name = "STRIPE_TIMEOUT", default = "30", example = "10", text = "seconds for one call to Stripe (0.1–300)" },
  { name = "POLICY", example = "scripts/example_policy.lua", text = "path of a Lua policy file" },
  { name = "TOKEN_KEYS", example = "k1:$(head -c 32 /dev/urandom | base64)", file = true,
    text = "kid:base64key[,…]: tokens encrypted at rest under the first; required with a live key" },
  { name = "RATE_LIMIT", default = "30/30", example = "off",
    text = "BURST/PER_MINUTE or off: per client address on /connect, the callback, /onboard, /admin/login" },
  { name = "ONBOARDING", default = "oauth", example = "both", text = "oauth, account_links or both" },
}

-- `make run` (scripts/dev.lua): besides the platform's settings, which pass through.
M.DEV = {
  { name = "PORT", default = "8080", example = "8081", text = "make run: the platform's port on 127.0.0.1" },
  { name = "FAKE_PORT", default = "12111", example = "12112", text = "make run: the fake Connect's port" },
  { name = "DATA_DIR", default = "data", example = "/tmp/sc-data",
    text = "make run: secrets, admin token, SQLite file, run.env (make accounts reads DATA_DIR/run.env)" },
}

-- The fake Connect (scripts/fake_connect.lua, stripe_connect.fake.config_from_env).
M.FAKE = {
  { name = "FAKE_CLIENT_ID", default = "ca_fake_development_client", example = "ca_test", text = "the client id it accepts" },
  { name = "FAKE_SECRET_KEY", default = "sk_test_fake_development_key", example = "sk_live_fake",
    text = "the platform key it accepts (sk_live_… makes it live mode)" },
  { name = "FAKE_REDIRECT_URIS", default = "http://127.0.0.1:8080/oauth/callback,http://localhost:8080/oauth/callback",
    example = "http://127.0.0.1:8081/oauth/callback", text = "comma list of redirect URIs it allows" },
  { name = "FAKE_WEBHOOK_URL", example = "http://127.0.0.1:8080/webhooks",
    text = "where its Disconnect control sends a signed deauthorization event" },
  { name = "FAKE_WEBHOOK_SECRETS", default = "whsec_fake_development_secret", example = "whsec_test",
    text = "comma list; the first signs its events" },
  { name = "FAKE_PLATFORM_NAME", default = "Fake Platform", example = "Acme", text = "the name on its consent page" },
  { name = "FAKE_ISSUED_LOG", example = "/tmp/issued.log", text = "a file it appends the codes and tokens it issues to (specs)" },
}

-- by_name() -> name → entry (NAME_FILE names included, mapping to their setting).
function M.by_name()
  local t = {}
  for _, s in ipairs(M.PLATFORM) do
    t[s.name] = s
    if s.file then t[s.name .. "_FILE"] = s end
  end
  return t
end

-- text() -> what `stripe-connect help settings` prints.
function M.text()
  local out = { "Environment settings of the platform (serve scripts/platform.lua, doctor, the scripts):", "" }
  for _, s in ipairs(M.PLATFORM) do
    out[#out + 1] = string.format("  %-24s %s", s.name, s.text)
    out[#out + 1] = string.format("  %-24s default: %s", "", s.default or "unset")
    out[#out + 1] = string.format("  %-24s example: %s=%s", "", s.name, s.example)
    if s.file then out[#out + 1] = string.format("  %-24s or %s_FILE=PATH: read from a file", "", s.name) end
  end
  out[#out + 1] = ""
  out[#out + 1] = "A missing or invalid setting stops the start (exit 2) with one line per problem."
  for _, g in ipairs({ { "make run (scripts/dev.lua):", M.DEV }, { "The fake Connect (scripts/fake_connect.lua):", M.FAKE } }) do
    out[#out + 1] = ""
    out[#out + 1] = g[1]
    out[#out + 1] = ""
    for _, st in ipairs(g[2]) do
      out[#out + 1] = string.format("  %-24s %s", st.name, st.text)
      out[#out + 1] = string.format("  %-24s default: %s", "", st.default or "unset")
      out[#out + 1] = string.format("  %-24s example: %s=%s", "", st.name, st.example)
    end
  end
  return table.concat(out, "\n") .. "\n"
end

-- roff(s) -> s with troff's special characters escaped.
local function roff(s)
  return (s:gsub("\\", "\\e"):gsub("%-", "\\-"):gsub("^([.'])", "\\&%1"))
end

-- man() -> doc/stripe-connect.1 (troff): the commands, and the settings from M.PLATFORM.
-- `make man` writes it; spec/integration/install_spec.lua checks it is current.
function M.man()
  local out = {
    '.TH STRIPE\\-CONNECT 1 "" "stripe-connect" "User Commands"',
    ".SH NAME", "stripe\\-connect \\- Stripe Connect OAuth for a platform: run scripts, serve apps",
    ".SH SYNOPSIS",
    ".B stripe\\-connect run", ".I SCRIPT", "[\\fIARGS\\fR...]", ".br",
    ".B stripe\\-connect serve", ".I APP", "[\\fIOPTIONS\\fR]", ".br",
    ".B stripe\\-connect doctor", "[\\fIOPTIONS\\fR]", ".br",
    ".B stripe\\-connect version", ".br",
    ".B stripe\\-connect help", "[\\fICOMMAND\\fR|\\fBsettings\\fR]",
    ".SH COMMANDS",
    ".TP", ".B run \\fISCRIPT\\fR [\\fIARGS\\fR...]",
    roff("Run a Lua 5.4 script with the core preloaded and the project's modules found; " ..
      "arg[0] is the script, arg[1..] its arguments; - reads standard input. A bare name " ..
      "(accounts, refresh, doctor, ...) is one of the installed scripts."),
    ".TP", ".B serve \\fIAPP\\fR [\\fIOPTIONS\\fR]",
    roff("Serve the app APP.lua returns over HTTP/1.1; prints \"listening on http://HOST:PORT\" " ..
      "once ready. \"serve platform\" serves the installed platform app. Options: " ..
      "--listen HOST:PORT, --metrics-listen HOST:PORT, --workers N, --quiet, " ..
      "--log-format text|logfmt|json, --max-header-size BYTES, --max-headers N, " ..
      "--max-body-size BYTES, --read-timeout SECONDS, --max-connections N, " ..
      "--max-instructions N, --shutdown-timeout SECONDS (see serve --help)."),
    ".TP", ".B doctor \\fR[\\fB\\-\\-json\\fR] [\\fB\\-\\-offline\\fR] [\\fB\\-\\-ca\\-file \\fIPATH\\fR]",
    roff("Check the platform's settings (the same environment as serve platform) against known traps " ..
      "and print each finding with its fix; exit 0 clean, 1 findings (run doctor)."),
    ".TP", ".B version", "Print the version and the Lua release.",
    ".TP", ".B help \\fR[\\fICOMMAND\\fR|\\fBsettings\\fR]",
    roff("Describe the commands, one command, or every environment setting."),
    ".SH ENVIRONMENT",
    roff("The platform (serve platform, run doctor, the scripts) reads these settings. " ..
      "A missing or invalid one stops the start (exit 2) with one line per problem."),
  }
  for _, st in ipairs(M.PLATFORM) do
    out[#out + 1] = ".TP"
    out[#out + 1] = ".B " .. roff(st.name) .. (st.file and (" \\fRor\\fB " .. roff(st.name) .. "_FILE") or "")
    out[#out + 1] = roff(st.text .. ". Default: " .. (st.default or "unset") .. ". Example: " ..
      st.name .. "=" .. st.example)
  end
  for _, g in ipairs({ { "make run", M.DEV }, { "the fake Connect", M.FAKE } }) do
    out[#out + 1] = ".PP"
    out[#out + 1] = roff("Read by " .. g[1] .. ":")
    for _, st in ipairs(g[2]) do
      out[#out + 1] = ".TP"
      out[#out + 1] = ".B " .. roff(st.name)
      out[#out + 1] = roff(st.text .. ". Default: " .. (st.default or "unset") .. ". Example: " ..
        st.name .. "=" .. st.example)
    end
  end
  out[#out + 1] = ".SH FILES"
  out[#out + 1] = roff("PREFIX/share/stripe-connect/scripts (the scripts), PREFIX/share/lua/5.4/stripe_connect " ..
    "(the modules), PREFIX/lib/lua/5.4 and PREFIX/lib/lua/5.1 (the core for Lua 5.4 and LuaJIT), " ..
    "PREFIX/share/doc/stripe-connect/stripe-connect.service (an example systemd unit).")
  out[#out + 1] = ".SH EXIT STATUS"
  out[#out + 1] = "0 success, 1 failure, 2 usage or settings."
  return table.concat(out, "\n") .. "\n"
end

return M
