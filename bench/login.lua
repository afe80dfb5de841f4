-- wrk script for bench/gate.sh's login-throughput run.
--
--   wrk ... -s bench/login.lua http://127.0.0.1:PORT -- PREFIX REPEAT
--
-- Every request is POST /wx/login {"code": "<PREFIX><thread>-<k>"}, and each
-- code is posted REPEAT times in a row (default 2) by the same wrk thread: the
-- posts of one code go out on different connections, usually while the first
-- is still waiting for the platform, so they exercise both the in-flight
-- de-duplication and the "already exchanged" path. done() prints one line:
--
--   LOGIN posts=<requests generated> distinct=<distinct codes generated>
--         ok=<200 answers> err=<other answers> s4xx=<..> s5xx=<..>

local threads = {}
local next_id = 1

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  prefix = args[1] or "c"
  rep = tonumber(args[2] or "2")
  n = 0
  ok, s4xx, s5xx, other = 0, 0, 0, 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local code = prefix .. id .. "-" .. math.floor(n / rep)
  n = n + 1
  return wrk.format("POST", "/wx/login", nil, '{"code":"' .. code .. '"}')
end

function response(status, headers, body)
  if status == 200 then
    ok = ok + 1
  elseif status >= 400 and status < 500 then
    s4xx = s4xx + 1
  elseif status >= 500 then
    s5xx = s5xx + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local posts, distinct, t_ok, t4, t5, to = 0, 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    local tn = t:get("n")
    local trep = t:get("rep")
    posts = posts + tn
    distinct = distinct + math.ceil(tn / trep)
    t_ok = t_ok + t:get("ok")
    t4 = t4 + t:get("s4xx")
    t5 = t5 + t:get("s5xx")
    to = to + t:get("other")
  end
  io.write(string.format("LOGIN posts=%d distinct=%d ok=%d s4xx=%d s5xx=%d other=%d\n",
    posts, distinct, t_ok, t4, t5, to))
end
