-- wrk script for bench/webhook.py: replays pre-signed WeChat POSTs and checks every reply.
--
-- wrk cannot sign a request, so bench/webhook.py signs them (fresh timestamps, one MsgId each)
-- right before the run and writes one file per wrk thread: "<prefix>.<thread id>", each request
-- as "<byte length>\n<raw HTTP request>". A thread sends its own file in order; if it runs out
-- it starts over and counts the wrap (for Sisong a wrapped request is a dedupe hit, not the
-- full path, so webhook.py flags such a run).
--
-- Every reply is classified here (a reply that is not a 200 with XML is not throughput):
--   status   - not 200
--   notxml   - 200 but not <xml> (empty, "success": the deadline hand-off or a rate-limited follower)
--   failtext - 200 XML whose plain text says it failed ("系统繁忙", "出了点小问题"); plain mode only,
--              safe-mode replies are encrypted: webhook.py decrypts the samples instead
-- and every `every`-th reply body is kept (up to `keep`) for webhook.py to decode: done() copies
-- each thread's counters and samples (wrk's thread:get copies tables) and writes the samples to
-- "<out prefix>.<thread id>.samples".
--
-- Arguments (after --): <prefix> <threads> <sample every> <samples kept> <out prefix>

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local fail_texts = { "系统繁忙", "出了点小问题" }

function init(args)
   local prefix = args[1]
   every = tonumber(args[3])
   keep = tonumber(args[4])
   out_prefix = args[5]
   requests = {}
   local f = assert(io.open(prefix .. "." .. id, "rb"))
   local data = f:read("*a")
   f:close()
   local pos = 1
   local size = #data
   while pos <= size do
      local nl = string.find(data, "\n", pos, true)
      local len = tonumber(string.sub(data, pos, nl - 1))
      requests[#requests + 1] = string.sub(data, nl + 1, nl + len)
      pos = nl + len + 1
   end
   signed = #requests
   index = 0
   wraps = 0
   seen = 0
   bad_status = 0
   not_xml = 0
   fail_text = 0
   samples = {}
end

function request()
   index = index + 1
   if index > #requests then
      index = 1
      wraps = wraps + 1
   end
   return requests[index]
end

function response(status, headers, body)
   seen = seen + 1
   if status ~= 200 then
      bad_status = bad_status + 1
   elseif not body or not string.find(string.sub(body, 1, 16), "<xml>", 1, true) then
      not_xml = not_xml + 1
   else
      for _, text in ipairs(fail_texts) do
         if string.find(body, text, 1, true) then
            fail_text = fail_text + 1
            break
         end
      end
   end
   if seen % every == 0 and #samples < keep then
      samples[#samples + 1] = body or ""
   end
end

function done(summary, latency, requests)
   -- Main state: totals from wrk itself, one line webhook.py parses.
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
   for _, thread in ipairs(threads) do
      local tid = thread:get("id")
      io.write(string.format(
         "THREAD id=%d seen=%d status=%d notxml=%d failtext=%d wraps=%d signed=%d\n",
         tid, thread:get("seen"), thread:get("bad_status"), thread:get("not_xml"),
         thread:get("fail_text"), thread:get("wraps"), thread:get("signed")))
      local kept = thread:get("samples")
      local f = assert(io.open(thread:get("out_prefix") .. "." .. tid .. ".samples", "wb"))
      for _, body in ipairs(kept or {}) do
         f:write(#body, "\n", body)
      end
      f:close()
   end
end
