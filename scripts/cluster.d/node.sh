# shellcheck shell=bash
# The real node (sourced by scripts/cluster): containerd with runc and the CNI bridge, kubelet and
# kube-proxy (iptables mode), inside the cluster's network namespace. Pods live in cgroups nested
# under the one this script runs in, their files and mounts under $dir/node; `down` kills them,
# unmounts and removes all of it.
#
# This machine's kernel runs cgroup v1 (hybrid): kubelet is told so (failCgroupV1: false) and
# uses the cgroupfs driver. containerd restricts oom_score_adj (the processes here lack
# CAP_SYS_RESOURCE). The pause image is built here and imported, never pulled.

node_dir="$dir/node"
containerd_sock="$node_dir/containerd.sock"
pod_cidr=10.85.0.0/16
pause_ref=sluice.dev/pause:1

# The cgroup the pods go under: a child of this script's own (the memory hierarchy's line of
# /proc/self/cgroup), made in every v1 hierarchy.
own_cgroup="$(awk -F: '$2 == "memory" {print $3}' /proc/self/cgroup)"
cgroup_root="${own_cgroup%/}/$name"

cgroup_hierarchies() { # the mount points of the cgroup v1 hierarchies (and with "all", v2's too)
	awk -v all="${1:-}" '$9 == "cgroup" || (all && $9 == "cgroup2") {print $5}' /proc/self/mountinfo
}

cgroups_up() {
	local hier path part created="$dir/run/cgroups-created"
	for hier in $(cgroup_hierarchies); do
		path="$hier"
		IFS=/ read -ra parts <<<"${cgroup_root#/}"
		for part in "${parts[@]}"; do
			[[ -n "$part" ]] || continue
			if [[ ! -d "$path/$part" ]]; then
				mkdir "$path/$part"
				echo "$path/$part" >>"$created"
			fi
			if [[ -f "$path/$part/cpuset.cpus" ]]; then
				[[ -n "$(cat "$path/$part/cpuset.cpus")" ]] || cat "$path/cpuset.cpus" >"$path/$part/cpuset.cpus"
				[[ -n "$(cat "$path/$part/cpuset.mems")" ]] || cat "$path/cpuset.mems" >"$path/$part/cpuset.mems"
			fi
			path="$path/$part"
		done
	done
}

cgroup_pids() { # every process in the pods' cgroups
	local procs="/sys/fs/cgroup/memory$cgroup_root"
	[[ -d "$procs" ]] || return 0
	find "$procs" -name cgroup.procs -exec cat {} + 2>/dev/null
}

cgroups_down() {
	local hier created="$dir/run/cgroups-created"
	# runc also makes the pods' cgroups in the unified (v2) hierarchy of this hybrid layout.
	for hier in $(cgroup_hierarchies all); do
		[[ -d "$hier$cgroup_root" ]] && find "$hier$cgroup_root" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	# The levels between our own cgroup and the pods' one that `up` had to make (other
	# hierarchies than memory), innermost first; one still used by another cluster stays.
	if [[ -f "$created" ]]; then
		tac "$created" | while read -r path; do
			rmdir "$path" 2>/dev/null || true
		done
	fi
	for hier in $(cgroup_hierarchies all); do
		[[ ! -d "$hier$cgroup_root" ]] || log "could not remove the cgroup $hier$cgroup_root"
	done
}

# Directories on the host that containerd, its shims and CNI make outside $dir; `up` notes the
# ones that did not exist, and `down` removes those again once they are empty.
host_dirs=(/run/containerd /run/containerd/s /var/lib/cni /var/lib/cni/results /var/log/containers)

note_host_dirs() {
	local path
	for path in "${host_dirs[@]}"; do
		[[ -e "$path" ]] || grep -qxF "$path" "$dir/run/host-dirs-created" 2>/dev/null ||
			echo "$path" >>"$dir/run/host-dirs-created"
	done
}

write_node_config() {
	mkdir -p "$node_dir"/{containerd,cni/net.d,cni/ipam,kubelet,pod-logs,volume-plugins,runc,tmp}
	local host
	for host in "$(registry_address)" "$node_ip:$registry_port" "$registry_cluster_ip:$registry_port"; do
		mkdir -p "$node_dir/certs.d/$host"
		write_file "$node_dir/certs.d/$host/hosts.toml" <<EOF
server = "https://$host"
[host."https://$host"]
  capabilities = ["pull", "resolve"]
  ca = "$dir/pki/ca.crt"
EOF
	done
	write_file "$node_dir/containerd.toml" <<EOF
version = 2
root = "$node_dir/containerd/root"
state = "$node_dir/containerd/state"
temp = "$node_dir/tmp"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$containerd_sock"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$node_dir/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node_dir/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$node_dir/certs.d"

[plugins."io.containerd.internal.v1.opt"]
  path = "$node_dir/containerd/opt"
EOF
	write_file "$node_dir/cni/net.d/10-$name.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$name",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$node_dir/cni/ipam"
      }
    }
  ]
}
EOF
	# Pods have no cluster DNS here: they address Services by ClusterIP (or their env variables).
	write_file "$node_dir/resolv.conf" </dev/null
	write_kubeconfig "$dir/kubelet.kubeconfig" kubelet
	write_kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy
	write_file "$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: $cgroup_root
enforceNodeAllocatable: []
containerRuntimeEndpoint: unix://$containerd_sock
address: $node_ip
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $dir/pki/kubelet.crt
tlsPrivateKeyFile: $dir/pki/kubelet.key
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $dir/pki/ca.crt
authorization:
  mode: Webhook
clusterDomain: cluster.local
resolvConf: $node_dir/resolv.conf
podLogsDir: $node_dir/pod-logs
volumePluginDir: $node_dir/volume-plugins
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
registerWithTaints:
- key: sluice.dev/node
  value: real
  effect: NoSchedule
EOF
	write_file "$node_dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: $dir/kube-proxy.kubeconfig
hostnameOverride: $real_node
mode: iptables
clusterCIDR: $pod_cidr
iptables:
  # Replies from a pod to a pod on the same bridge come back through the node, so the
  # Service's address translation is undone (no br_netfilter needed for hairpin traffic).
  masqueradeAll: true
conntrack:
  maxPerCore: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
nodePortAddresses: ["primary"]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
}

ctr_() { ctr --address "$containerd_sock" --namespace k8s.io "$@"; }

pause_image() { # the pause image as an archive for `ctr import`, built once per pause binary
	local archive="$bin/pause-image.tar"
	if [[ ! -f "$archive" ]]; then
		"$repo/scripts/image" archive "$bin/pause" "$pause_ref" "$archive.tmp" >&2 ||
			die "building the pause image failed"
		mv "$archive.tmp" "$archive"
	fi
	echo "$archive"
}

node_up() {
	write_node_config
	cgroups_up
	note_host_dirs
	# Registry trust for skopeo, buildah and podman on the host (removed by `down`).
	mkdir -p "/etc/containers/certs.d/$(registry_address)"
	cp "$dir/pki/ca.crt" "/etc/containers/certs.d/$(registry_address)/ca.crt"

	start containerd netns "$(command -v containerd)" --config "$node_dir/containerd.toml"
	wait_for containerd 60 "containerd to answer" ctr_ version
	if ! ctr_ images check "name==$pause_ref" 2>/dev/null | grep -q complete; then
		ctr_ images import "$(pause_image)" >/dev/null || die "importing the pause image failed"
	fi

	start kubelet netns "$bin/kubelet" --config "$node_dir/kubelet.yaml" \
		--kubeconfig "$dir/kubelet.kubeconfig" --hostname-override "$real_node" --node-ip "$node_ip" \
		--root-dir "$node_dir/kubelet" --node-labels sluice.dev/node=real --v 1
	wait_for kubelet 180 "node $real_node to be Ready" node_ready "$real_node"
	# After the Node exists: kube-proxy takes its addresses from it, and restarts itself when
	# they change (from none to the node's, if it started first).
	start kube-proxy netns "$bin/kube-proxy" --config "$node_dir/kube-proxy.yaml"
	wait_for kube-proxy 60 "kube-proxy to be healthy" in_netns curl -fsS --max-time 2 http://127.0.0.1:10256/healthz
}

# Stops the pods and the node's daemons and unmounts what they mounted.
node_down() {
	stop kubelet
	if pid_of containerd >/dev/null; then
		# Removing the tasks through containerd lets each shim exit and remove its socket.
		local id
		for id in $(timeout 10 ctr_ tasks ls -q 2>/dev/null); do
			timeout 15 ctr_ tasks rm -f "$id" >/dev/null 2>&1 || true
		done
	fi
	local pids i
	for i in $(seq 1 50); do
		pids="$(cgroup_pids)"
		[[ -n "$pids" ]] || break
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null || true
		sleep 0.2
	done
	[[ -z "$(cgroup_pids)" ]] || log "processes still run in $cgroup_root: $(cgroup_pids | tr '\n' ' ')"
	stop kube-proxy
	stop containerd
	# Shims of tasks containerd could not remove.
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $containerd_sock" || true); do
		kill -KILL "$pid" 2>/dev/null || true
	done
	node_unmount
}

node_unmount() { # every mount under $dir, deepest first
	local mount_point
	awk '{print $5}' /proc/self/mountinfo | sed 's/\\040/ /g' | { grep -F "$dir/" || true; } |
		awk '{print length, $0}' | sort -rn | cut -d' ' -f2- | while IFS= read -r mount_point; do
		umount "$mount_point" 2>/dev/null || umount -l "$mount_point" 2>/dev/null ||
			log "could not unmount $mount_point"
	done
}

# What the node leaves on the host outside $dir: cgroups, CNI's result cache (by network name
# and, for the loopback network, by sandbox id), the kubelet's log links, the registry trust of
# the container tools, and the directories `up` found missing.
node_cleanup_host() {
	cgroups_down
	local sandbox
	rm -f /var/lib/cni/results/"$name"-* 2>/dev/null || true
	for sandbox in "$node_dir"/containerd/root/io.containerd.grpc.v1.cri/sandboxes/*; do
		[[ -e "$sandbox" ]] && rm -f /var/lib/cni/results/*-"$(basename "$sandbox")"-* 2>/dev/null
	done
	if [[ -d /var/log/containers ]]; then
		find /var/log/containers -maxdepth 1 -type l -lname "$node_dir/*" -delete 2>/dev/null || true
	fi
	rm -rf "/etc/containers/certs.d/$(registry_address)"
	if [[ -f "$dir/run/host-dirs-created" ]]; then
		tac "$dir/run/host-dirs-created" | while read -r path; do
			rmdir "$path" 2>/dev/null || true
		done
	fi
}
