-- wrk script: rotates pre-minted tokens of many tenants. Environment:
--   BENCH_TOKENS  file of lines "<token> <tenant_id> <agent_id> <agent_id> ..."
--                 (login mode: "<email> <password>")
--   BENCH_MODE    tenantd (Authorization: Bearer) | bare (X-Tenant-ID) | login
--   BENCH_SCENARIO get | list | create | upload (a 40-byte file: writes a file.created event)
--   BENCH_NONCE   makes created names unique across runs
local lines = {}
for l in io.lines(os.getenv("BENCH_TOKENS")) do
  local parts = {}
  for w in l:gmatch("%S+") do table.insert(parts, w) end
  table.insert(lines, parts)
end
local mode = os.getenv("BENCH_MODE")
local scenario = os.getenv("BENCH_SCENARIO")
local nonce = os.getenv("BENCH_NONCE") or "0"
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local i = 0
function request()
  i = i + 1
  local p = lines[(i % #lines) + 1]
  local headers = {}
  if mode == "login" then
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/v1/auth/login", headers,
      '{"email":"' .. p[1] .. '","password":"' .. p[2] .. '"}')
  end
  if mode == "tenantd" then headers["Authorization"] = "Bearer " .. p[1] else headers["X-Tenant-ID"] = p[2] end
  if scenario == "get" then
    return wrk.format("GET", "/v1/agents/" .. p[3 + (i % (#p - 2))], headers)
  elseif scenario == "list" then
    return wrk.format("GET", "/v1/agents?limit=50", headers)
  end
  if scenario == "upload" then
    headers["Content-Type"] = "application/octet-stream"
    return wrk.format("POST", "/v1/files?name=f" .. nonce .. "-" .. tostring(tid) .. "-" .. i .. ".txt",
      headers, "a small file of forty bytes, for bench.")
  end
  headers["Content-Type"] = "application/json"
  return wrk.format("POST", "/v1/agents", headers,
    '{"name":"b' .. nonce .. "-" .. tostring(tid) .. "-" .. i .. '","spec":{"model":"small"}}')
end

function done(summary, latency, requests)
  local e = summary.errors
  io.stderr:write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
