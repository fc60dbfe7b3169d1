-- scripts/dev.lua — what `make run` starts: the fake Connect and the
-- platform configured against it.  (The platform app issue fills this in.)
io.stderr:write("stripe-connect: the platform app is not built yet; `make test` runs the specs\n")
os.exit(1)
