# Sourced by bench/recv-queue-ab and bench/rev-ab: one round of an A/B
# comparison of example servers. Needs WORK (a scratch dir) and T (the
# target dir holding examples/echo_client).
#
#   ab_setup                       write the pipelining wrk script
#   ab_round LABEL ROUND KIND CONNS SECS SERVER_CMD...
#
# ab_round starts SERVER_CMD (plus --threads 1 --port P) pinned to CPU 0,
# runs the load (KIND: http = wrk keep-alive, pipe = wrk with 16 requests
# per write, close = wrk with `Connection: close` (a connection per
# request: the accept rate), echo = 1 KiB messages with echo_client, tls = 64 KiB messages
# over TLS with tls_load, tls1k = 1 KiB ones: SERVER_CMD gets --tls and a
# key pair made on first use) pinned to CPU 1 for
# SECS seconds, stops the server and prints its CPU per request from
# /proc/PID/stat.

# The tls kind's key pair, made on first use.
ab_tls_keys() {
  [ -e "$WORK/cert.pem" ] && return 0
  command -v openssl >/dev/null || { echo "the tls kind needs openssl (scripts/test installs it)" >&2; return 1; }
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE -days 2 >/dev/null
}

ab_setup() {
  cat >"$WORK/pipeline.lua" <<'LUA'
init = function(args)
  local r = {}
  for i = 1, 16 do r[i] = wrk.format(nil, "/") end
  req = table.concat(r)
end
request = function() return req end
LUA
}

ab_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

ab_round() {
  local label=$1 round=$2 kind=$3 conns=$4 secs=$5
  shift 5
  local port pid u0 s0 u1 s1 out n hz len
  hz=$(getconf CLK_TCK)
  port=$(ab_free_port)
  if [ "$kind" = tls ] || [ "$kind" = tls1k ]; then
    ab_tls_keys || return 1
    set -- "$@" --tls --cert "$WORK/cert.pem" --key "$WORK/key.pem"
  fi
  taskset -c 0 "$@" --threads 1 --port "$port" >"$WORK/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do grep -q "listening on" "$WORK/server.log" && break; sleep 0.05; done
  u0=$(awk '{print $14}' "/proc/$pid/stat"); s0=$(awk '{print $15}' "/proc/$pid/stat")
  case $kind in
    http) out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/" 2>&1)
          n=$(awk '/requests in/ {print $1}' <<<"$out") ;;
    pipe) out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" -s "$WORK/pipeline.lua" "http://127.0.0.1:$port/" 2>&1)
          n=$(awk '/requests in/ {print $1}' <<<"$out") ;;
    close) out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${secs}s" -H "Connection: close" "http://127.0.0.1:$port/" 2>&1)
          n=$(awk '/requests in/ {print $1}' <<<"$out") ;;
    echo) out=$(taskset -c 1 "$T/examples/echo_client" --addr "127.0.0.1:$port" --conns "$conns" --len 1024 --secs "$secs" --threads 1 2>&1)
          n=$(sed -n 's/.*(\([0-9]*\) messages).*/\1/p' <<<"$out") ;;
    tls|tls1k)
         len=65536; [ "$kind" = tls1k ] && len=1024
         out=$(taskset -c 1 "$T/tls_load" --addr "127.0.0.1:$port" --ca "$WORK/cert.pem" --mode echo --len "$len" --conns "$conns" --secs "$secs" --threads 1 2>&1)
         n=$(sed -n 's/.*(\([0-9]*\) messages).*/\1/p' <<<"$out") ;;
    *) echo "kind: http, pipe, close, echo, tls or tls1k" >&2; kill "$pid"; return 2 ;;
  esac
  u1=$(awk '{print $14}' "/proc/$pid/stat"); s1=$(awk '{print $15}' "/proc/$pid/stat")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  if grep -qE "Socket errors|Non-2xx" <<<"$out"; then
    echo "WARNING round $round $label: load generator errors: $(grep -E "Socket errors|Non-2xx" <<<"$out" | tr -s ' ' | tr '\n' ';')"
  fi
  awk -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" -v l="$label" -v r="$round" -v secs="$secs" \
    'BEGIN { printf "round %d %s rate=%.0f/s user=%.3f sys=%.3f total=%.3f us/req\n", r, l, n / secs, u / hz * 1e6 / n, s / hz * 1e6 / n, (u + s) / hz * 1e6 / n }'
}
