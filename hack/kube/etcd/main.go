// Command etcd is the etcd server, built from the etcd Go module for the
// test control plane (Debian's etcd is too old for current kube-apiservers).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
