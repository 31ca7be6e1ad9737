#!/bin/sh
# The class page's data, as JSON: this gateway's terminals as Docker lists them (labels, state)
# and, for each running one, its tmux session (`display-message` through a Docker exec) and
# whether its VM's SSH port answers with a banner. Takes no input: the query string is ignored.
# GATEWAY, TMUX_SOCKET and TMUX_SESSION are set above this line by the provider (validated names).
S=/var/run/docker.sock
api() { curl -sf --max-time 5 --unix-socket "$S" -H 'Content-Type: application/json' "$@"; }
printf 'Content-Type: application/json\r\nCache-Control: no-store\r\n\r\n'
list=$(api -G http://docker/containers/json --data-urlencode all=1 \
  --data-urlencode "filters={\"label\":[\"lab.gateway=$GATEWAY\",\"lab.terminal\"]}") || {
  printf '{"error":"the Docker API did not answer"}\n'
  exit 0
}
# Each terminal is looked at in the background (an SSH banner may take its 2 s timeout), into
# a file of its own; then they are joined.
out=$(mktemp -d) || exit 0
trap 'rm -rf "$out"' EXIT
look() {
  one=$1 id=$2 session="" vm="unknown"
  case "$one" in
  *'"State":"running"'*)
    exec_id=$(api -X POST "http://docker/containers/$id/exec" -d "{\"AttachStdout\":true,\"Tty\":true,\
\"Cmd\":[\"tmux\",\"-u\",\"-S\",\"$TMUX_SOCKET\",\"display-message\",\"-p\",\"-t\",\"$TMUX_SESSION\",\
\"#{session_activity} #{session_attached}\"]}" | grep -o '"Id":"[0-9a-f]*"' | cut -d'"' -f4)
    [ -n "$exec_id" ] && session=$(api -X POST "http://docker/exec/$exec_id/start" -d '{"Tty":true}' |
      tr -cd '0-9 ' | head -c 40)
    ;;
  esac
  target=$(printf '%s' "$one" | grep -o '"lab.target":"[0-9A-Za-z.:-]*"' | head -n 1 | cut -d'"' -f4)
  if [ -n "$target" ]; then
    banner=$(timeout 2 nc -w 2 "${target%:*}" "${target##*:}" </dev/null 2>/dev/null | head -c 4)
    if [ "$banner" = "SSH-" ]; then vm="up"; else vm="down"; fi
  fi
  printf '"%s":{"session":"%s","vm":"%s"}' "$id" "$session" "$vm" >"$out/$id"
}
# One container per line: each object of the list starts with its "Id". The looks run as jobs
# of this shell (not of a pipeline's subshell), so `wait` waits for them all.
printf '%s' "$list" | sed 's/},{"Id":/}\n{"Id":/g' >"$out/list"
for found in $(grep -no '"Id":"[0-9a-f]\{64\}"' "$out/list" | cut -d'"' -f1,4 | tr -d '"'); do
  look "$(sed -n "${found%%:*}p" "$out/list")" "${found##*:}" &
done
wait
rm -f "$out/list"
printf '{"now":%s,"terminals":%s,"status":{%s}}\n' "$(date +%s)" "$list" "$(cat "$out"/* 2>/dev/null | sed 's/}"/},"/g')"
