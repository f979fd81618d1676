//! A stand-in for a node's kubelet in the benchmark tests: a program named `kubelet` that
//! takes a real kubelet's command line and waits to be killed, so that `/proc` shows what a
//! real one shows (its name, its flags, its namespaces).

fn main() {
    loop {
        std::thread::park();
    }
}
