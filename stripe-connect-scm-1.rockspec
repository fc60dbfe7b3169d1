rockspec_format = "3.0"
package = "stripe-connect"
version = "scm-1"
source = {
   url = "git+file:///dev/null",
}
description = {
   summary = "Stripe Connect OAuth (Standard accounts) for Lua: C core, Lua policy, host binary",
   license = "MIT",
}
-- lua-cjson: the oauth, fake, webhook and store modules decode JSON with it.
-- SQLite is the core's own (libsqlite3, through its C API); PostgreSQL through libpq.
dependencies = {
   "lua >= 5.1",
   "lua-cjson",
}
external_dependencies = {
   OPENSSL = { header = "openssl/hmac.h" },
   CURL = { header = "curl/curl.h" },
   SQLITE = { header = "sqlite3.h" },
   PQ = { header = "libpq-fe.h" },
}
build = {
   type = "builtin",
   modules = {
      ["stripe_connect.core"] = {
         sources = { "host/core/core.c", "host/core/buf.c", "host/core/crypto.c", "host/core/codec.c",
                     "host/core/parse.c", "host/core/http.c", "host/core/webhook.c",
                     "host/core/db.c", "host/core/sqlite.c", "host/core/pg.c", "host/core/metrics.c",
                     "host/core/ratelimit.c", "host/core/redact.c" },
         libraries = { "ssl", "crypto", "curl", "sqlite3", "pq", "pthread" },
         incdirs = { "$(OPENSSL_INCDIR)", "$(CURL_INCDIR)", "$(SQLITE_INCDIR)", "$(PQ_INCDIR)" },
         libdirs = { "$(OPENSSL_LIBDIR)", "$(CURL_LIBDIR)", "$(SQLITE_LIBDIR)", "$(PQ_LIBDIR)" },
         defines = { "_GNU_SOURCE" },
      },
      ["stripe_connect"] = "lua/stripe_connect/init.lua",
      ["stripe_connect.oauth"] = "lua/stripe_connect/oauth.lua",
      ["stripe_connect.webhook"] = "lua/stripe_connect/webhook.lua",
      ["stripe_connect.webhook_events"] = "lua/stripe_connect/webhook_events.lua",
      ["stripe_connect.fake"] = "lua/stripe_connect/fake.lua",
      ["stripe_connect.fake.http"] = "lua/stripe_connect/fake/http.lua",
      ["stripe_connect.fake.oauth"] = "lua/stripe_connect/fake/oauth.lua",
      ["stripe_connect.fake.v1"] = "lua/stripe_connect/fake/v1.lua",
      ["stripe_connect.fake.accounts"] = "lua/stripe_connect/fake/accounts.lua",
      ["stripe_connect.fake.customers"] = "lua/stripe_connect/fake/customers.lua",
      ["stripe_connect.fake.webhooks"] = "lua/stripe_connect/fake/webhooks.lua",
      ["stripe_connect.fake.faults"] = "lua/stripe_connect/fake/faults.lua",
      ["stripe_connect.fake.controls"] = "lua/stripe_connect/fake/controls.lua",
      ["stripe_connect.util"] = "lua/stripe_connect/util.lua",
      ["stripe_connect.state"] = "lua/stripe_connect/state.lua",
      ["stripe_connect.tokens"] = "lua/stripe_connect/tokens.lua",
      ["stripe_connect.config"] = "lua/stripe_connect/config.lua",
      ["stripe_connect.settings"] = "lua/stripe_connect/settings.lua",
      ["stripe_connect.policy"] = "lua/stripe_connect/policy.lua",
      ["stripe_connect.flow"] = "lua/stripe_connect/flow.lua",
      ["stripe_connect.doctor"] = "lua/stripe_connect/doctor.lua",
      ["stripe_connect.log"] = "lua/stripe_connect/log.lua",
      ["stripe_connect.metrics"] = "lua/stripe_connect/metrics.lua",
      ["stripe_connect.pages"] = "lua/stripe_connect/pages.lua",
      ["stripe_connect.app"] = "lua/stripe_connect/app.lua",
      ["stripe_connect.cli"] = "lua/stripe_connect/cli.lua",
      ["stripe_connect.admin"] = "lua/stripe_connect/admin.lua",
      ["stripe_connect.onboard"] = "lua/stripe_connect/onboard.lua",
      ["stripe_connect.api"] = "lua/stripe_connect/api.lua",
      ["stripe_connect.ngx"] = "lua/stripe_connect/ngx.lua",
      ["stripe_connect.ngx_http"] = "lua/stripe_connect/ngx_http.lua",
      ["stripe_connect.ngx_thread"] = "lua/stripe_connect/ngx_thread.lua",
      ["stripe_connect.router"] = "lua/stripe_connect/router.lua",
      ["stripe_connect.store"] = "lua/stripe_connect/store/init.lua",
      ["stripe_connect.store.memory"] = "lua/stripe_connect/store/memory.lua",
      ["stripe_connect.store.sqlite"] = "lua/stripe_connect/store/sqlite.lua",
      ["stripe_connect.store.postgres"] = "lua/stripe_connect/store/postgres.lua",
   },
}
