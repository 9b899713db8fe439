module evtbench/procpair

go 1.26.0
