"""High availability: Patroni clusters on etcd, decided here and deployed by pgops.deploys.cluster."""
