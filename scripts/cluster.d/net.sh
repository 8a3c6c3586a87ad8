# shellcheck shell=bash
# The cluster's network namespace (sourced by scripts/cluster). Inside it: the node's address on a
# veth whose other end is on the host (the host reaches the node, nothing else), a default route
# into a bridge without ports (ClusterIPs route, and whatever no Service or pod answers goes
# nowhere: no packet leaves for the host's networks), forwarding for pods.
# On the host: socat forwarders from 127.0.0.1 to the API server and the registry.

# Addresses derive from the API port: a /30 in 10.250.0.0/16 per cluster.
net_index=$((api_port % 16384))
net_base="10.250.$((net_index / 64)).$(((net_index % 64) * 4))"
host_ip="${net_base%.*}.$(((net_index % 64) * 4 + 1))"
node_ip="${net_base%.*}.$(((net_index % 64) * 4 + 2))"
host_if="sl$api_port"
# The Service in front of the registry, for pods.
registry_cluster_ip=10.96.0.20

in_netns() { nsenter --net="/run/netns/$name" -- "$@"; }

net_up() {
	if [[ -e "/run/netns/$name" ]] && ip link show "$host_if" >/dev/null 2>&1; then
		return 0
	fi
	# Half made by an earlier `up` that died: start over.
	[[ -e "/run/netns/$name" ]] && ip netns del "$name"
	ip link del "$host_if" 2>/dev/null || true
	if ip -4 route show to match "$node_ip" | grep -v '^default' | grep -q .; then
		die "the address $node_ip (for the node of the cluster on port $api_port) is already routed on this host: $(ip -4 route show to match "$node_ip" | grep -v '^default' | head -1)"
	fi
	ip netns add "$name"
	ip link add "$host_if" type veth peer name eth0 netns "$name"
	ip addr add "$host_ip/30" dev "$host_if"
	ip link set "$host_if" up
	in_netns ip link set lo up
	in_netns ip addr add "$node_ip/30" dev eth0
	in_netns ip link set eth0 up
	in_netns ip link add nowhere0 type bridge
	in_netns ip link set nowhere0 up
	in_netns ip route add default dev nowhere0
	in_netns sysctl -qw net.ipv4.ip_forward=1
	in_netns sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
	log "network namespace $name: node $node_ip, host end $host_ip on $host_if"
}

net_forward_up() { # net_forward_up <component> <port>: 127.0.0.1:<port> on the host to the node
	start "$1" host "$(command -v socat)" "TCP-LISTEN:$2,bind=127.0.0.1,fork,reuseaddr,nodelay" "TCP:$node_ip:$2,nodelay"
	local deadline=$((SECONDS + 10))
	until port_busy "$2"; do
		((SECONDS < deadline)) || { tail_log "$1"; die "the forwarder of port $2 did not listen"; }
		pid_of "$1" >/dev/null || { tail_log "$1"; die "the forwarder of port $2 exited"; }
		sleep 0.1
	done
}

net_down() {
	if [[ -e "/run/netns/$name" ]]; then
		ip netns del "$name" || log "could not delete the network namespace $name"
	fi
	ip link del "$host_if" 2>/dev/null || true
}
