# shellcheck shell=bash
# The control plane (sourced by scripts/cluster): etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and kwok with its fake node, all inside the cluster's network namespace; the API
# server is forwarded to 127.0.0.1:$api_port on the host.

readyz() {
	curl -fsS --max-time 5 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
		"https://127.0.0.1:$api_port/readyz"
}

node_ready() { # node_ready <node>
	[[ "$(kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

default_sa() { kubectl -n default get serviceaccount default; }

control_plane_up() {
	write_kubeconfig "$dir/kubeconfig" admin
	write_kubeconfig "$dir/kube-controller-manager.kubeconfig" kube-controller-manager
	write_kubeconfig "$dir/kube-scheduler.kubeconfig" kube-scheduler
	write_kubeconfig "$dir/kwok.kubeconfig" kwok

	start etcd netns "$bin/etcd" --name default --data-dir "$dir/data/etcd" \
		--listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
		--listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
		--initial-cluster "default=http://127.0.0.1:$etcd_peer_port" --listen-metrics-urls "" \
		--unsafe-no-fsync --quota-backend-bytes 4294967296 --log-level warn
	wait_for etcd 60 "etcd to be healthy" in_netns curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health"

	net_forward_up forward-api "$api_port"
	# Bound to every address of the namespace: 127.0.0.1 for the host's forwarder and the
	# components, the node address for the `kubernetes` Service that pods use.
	start kube-apiserver netns "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
		--bind-address 0.0.0.0 --advertise-address "$node_ip" --secure-port "$api_port" \
		--tls-cert-file "$dir/pki/apiserver.crt" --tls-private-key-file "$dir/pki/apiserver.key" \
		--client-ca-file "$dir/pki/ca.crt" --authorization-mode Node,RBAC \
		--enable-admission-plugins NodeRestriction \
		--kubelet-client-certificate "$dir/pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$dir/pki/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$dir/pki/sa.pub" --service-account-signing-key-file "$dir/pki/sa.key" \
		--service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true --profiling=false \
		--cert-dir "$dir/data/apiserver-certs"
	wait_for kube-apiserver 180 "kube-apiserver /readyz" readyz

	start kube-controller-manager netns "$bin/kube-controller-manager" \
		--kubeconfig "$dir/kube-controller-manager.kubeconfig" \
		--authentication-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
		--authorization-kubeconfig "$dir/kube-controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$dir/data/kcm-certs" \
		--leader-elect=false --use-service-account-credentials=true \
		--service-account-private-key-file "$dir/pki/sa.key" --root-ca-file "$dir/pki/ca.crt" \
		--cluster-signing-cert-file "$dir/pki/ca.crt" --cluster-signing-key-file "$dir/pki/ca.key" \
		--profiling=false
	start kube-scheduler netns "$bin/kube-scheduler" --kubeconfig "$dir/kube-scheduler.kubeconfig" \
		--authentication-kubeconfig "$dir/kube-scheduler.kubeconfig" \
		--authorization-kubeconfig "$dir/kube-scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$sched_port" --cert-dir "$dir/data/scheduler-certs" \
		--leader-elect=false --profiling=false
	start kwok netns "$bin/kwok" --kubeconfig "$dir/kwok.kubeconfig" --config "$repo/hack/kube/kwok/stages.yaml" \
		--manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
		--node-ip 10.0.0.1 --cidr 10.244.0.0/16 --node-lease-duration-seconds 40 \
		--server-address "127.0.0.1:$kwok_port"

	kubectl apply --server-side --field-manager cluster-script -f - >/dev/null <<EOF ||
apiVersion: v1
kind: Node
metadata:
  name: $kwok_node
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $kwok_node
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
		die "could not create the fake node $kwok_node"
	wait_for kwok 120 "node $kwok_node to be Ready" node_ready "$kwok_node"
	wait_for kube-controller-manager 120 "the default ServiceAccount" default_sa
}
