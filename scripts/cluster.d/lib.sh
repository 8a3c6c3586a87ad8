# shellcheck shell=bash
# Helpers of scripts/cluster (sourced): logging, starting and stopping components with PID files,
# waiting, certificates and kubeconfigs. Uses the variables scripts/cluster sets.

log() { echo "cluster: $*" >&2; }
die() {
	log "$*"
	exit 1
}

require_root() {
	[[ "$(id -u)" == 0 ]] ||
		die "scripts/cluster needs root: the real node creates a network namespace, cgroups and mounts (run it with sudo)"
}

require_tools() {
	local tool missing=()
	for tool in ip nsenter iptables socat containerd containerd-shim-runc-v2 runc ctr docker-registry \
		htpasswd openssl curl jq flock buildah; do
		command -v "$tool" >/dev/null || missing+=("$tool")
	done
	[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
		missing+=("CNI plugins in /usr/lib/cni")
	((${#missing[@]} == 0)) ||
		die "missing: ${missing[*]} (scripts/test installs them from scripts/apt-packages.txt)"
}

# stat_field <pid> <n>: field n of /proc/<pid>/stat (3 is the state, 22 the start time), read
# after the command name, which may itself hold spaces and parentheses.
stat_field() {
	local stat rest
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	read -r -a rest <<<"${stat##*) }"
	[[ -n "${rest[$2 - 3]:-}" ]] && echo "${rest[$2 - 3]}"
}

# A process counts as running until it exits; a zombie waiting for its parent to reap it has.
alive() { local state; state="$(stat_field "$1" 3)" && [[ "$state" != Z ]]; }

pid_of() { # the PID of a component we started, if that process still runs
	local file="$dir/run/$1.pid" pid started
	[[ -f "$file" ]] || return 1
	read -r pid started _ <"$file" || return 1
	[[ -n "$pid" && -n "$started" ]] && alive "$pid" || return 1
	# Guard against PID reuse with the process's start time, which stays the same through the
	# execs from the shell's fork to setsid, nsenter and the program (its command line does not:
	# right after the fork it is still the shell's).
	[[ "$(stat_field "$pid" 22)" == "$started" ]] || return 1
	echo "$pid"
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

tail_log() {
	log "last lines of $dir/logs/$1.log:"
	tail -n 25 "$dir/logs/$1.log" >&2 || true
}

# wait_for <component> <seconds> <description> <command...>: polls the command until it
# succeeds; fails with the component's log when it exits or the time runs out.
wait_for() {
	local component="$1" seconds="$2" what="$3"
	shift 3
	local deadline=$((SECONDS + seconds))
	until "$@" >/dev/null 2>&1; do
		if ! pid_of "$component" >/dev/null; then
			log "$component exited while waiting for $what"
			tail_log "$component"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			log "timed out after ${seconds}s waiting for $what"
			tail_log "$component"
			return 1
		fi
		sleep 0.5
	done
}

# start <component> host|netns <program> <args...>: runs the program in its own session, on the
# host or inside the cluster's network namespace, logging to logs/<component>.log.
start() {
	local component="$1" where="$2" exe="$3"
	shift 3
	if pid_of "$component" >/dev/null; then
		return 0
	fi
	local enter=()
	[[ "$where" == netns ]] && enter=(nsenter "--net=/run/netns/$name" --)
	setsid "${enter[@]}" "$exe" "$@" >>"$dir/logs/$component.log" 2>&1 </dev/null 9>&- &
	local pid=$! started
	# "gone" when it has already exited, which no start time matches. The program is there for
	# whoever reads the file.
	started="$(stat_field "$pid" 22)" || started=gone
	echo "$pid $started $exe" >"$dir/run/$component.pid"
	log "started $component (pid $pid)"
}

# stop <component>: TERM, then KILL after 10 s; waits until it is gone.
stop() {
	local component="$1" pid i
	pid="$(pid_of "$component")" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		alive "$pid" || break
		sleep 0.2
	done
	if alive "$pid"; then
		log "$component (pid $pid) did not stop on TERM; killing it"
		kill -KILL "$pid" 2>/dev/null || true
		for i in $(seq 1 25); do
			alive "$pid" || break
			sleep 0.2
		done
	fi
	rm -f "$dir/run/$component.pid"
	log "stopped $component (pid $pid)"
}

make_cert() { # make_cert <name> <subject> [subjectAltName]: a key and a certificate signed by our CA
	local cert="$1" subject="$2" san="${3:-}"
	[[ -f "$dir/pki/$cert.crt" ]] && return 0
	local ext=(-addext "basicConstraints=critical,CA:FALSE")
	if [[ -n "$san" ]]; then
		ext+=(-addext "subjectAltName=$san" -addext "extendedKeyUsage=serverAuth,clientAuth")
	else
		ext+=(-addext "extendedKeyUsage=clientAuth")
	fi
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
		-CA "$dir/pki/ca.crt" -CAkey "$dir/pki/ca.key" -subj "$subject" "${ext[@]}" \
		-keyout "$dir/pki/$cert.key" -out "$dir/pki/$cert.crt" 2>/dev/null ||
		die "openssl could not make the certificate $cert"
}

make_pki() {
	mkdir -p "$dir/pki"
	if [[ ! -f "$dir/pki/ca.crt" ]]; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
			-subj "/CN=sluice-test-ca" -keyout "$dir/pki/ca.key" -out "$dir/pki/ca.crt" 2>/dev/null ||
			die "openssl could not make the CA"
	fi
	make_cert apiserver "/CN=kube-apiserver" \
		"IP:127.0.0.1,IP:$node_ip,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	make_cert admin "/O=system:masters/CN=sluice-admin"
	make_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
	make_cert kube-controller-manager "/CN=system:kube-controller-manager"
	make_cert kube-scheduler "/CN=system:kube-scheduler"
	make_cert kwok "/O=system:masters/CN=kwok"
	make_cert kubelet "/O=system:nodes/CN=system:node:$real_node" "IP:$node_ip,DNS:$real_node"
	make_cert kube-proxy "/CN=system:kube-proxy"
	make_cert registry "/CN=sluice-registry" \
		"IP:127.0.0.1,IP:$node_ip,IP:$registry_cluster_ip,DNS:localhost,DNS:registry.kube-system.svc,DNS:registry.kube-system.svc.cluster.local"
	if [[ ! -f "$dir/pki/sa.key" ]]; then
		openssl genrsa -out "$dir/pki/sa.key" 2048 2>/dev/null &&
			openssl rsa -in "$dir/pki/sa.key" -pubout -out "$dir/pki/sa.pub" 2>/dev/null ||
			die "openssl could not make the service-account key"
	fi
}

# write_file <file>: writes stdin to the file only when its content differs, so a second `up`
# touches nothing that running components watch (kube-proxy exits when its config changes).
write_file() {
	local content
	content="$(cat)"
	[[ -f "$1" && "$(cat "$1")" == "$content" ]] && return 0
	printf '%s\n' "$content" >"$1.tmp" && mv "$1.tmp" "$1"
}

write_kubeconfig() { # write_kubeconfig <file> <cert name>
	write_file "$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sluice-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $dir/pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $dir/pki/$2.crt
    client-key: $dir/pki/$2.key
contexts:
- name: sluice-test
  context:
    cluster: sluice-test
    user: $2
current-context: sluice-test
EOF
}

kubectl() { "$bin/kubectl" --request-timeout 10s --kubeconfig "$dir/kubeconfig" "$@"; }
