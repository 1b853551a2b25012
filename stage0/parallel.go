package stage0

import (
	"runtime"
	"sync"
)

// inParallel calls fn(i) for every i below n on a few goroutines, and
// returns once all calls have. Reading many pods is mostly system calls
// and JSON decoding, which a second core halves.
func inParallel(n int, fn func(i int)) {
	workers := min(n, 2*runtime.GOMAXPROCS(0))
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
}

// ReadStatuses reads the status of each pod, as ReadStatus does, several
// at once, for a listing: a pod's apps come from its summary where that is
// current (Status.Manifest is then nil), and a pod without a current one
// gets one written for next time. The results are in the order of pods;
// errs[i] is pod i's error.
func ReadStatuses(pods []*Pod) (statuses []*Status, errs []error) {
	statuses, errs = make([]*Status, len(pods)), make([]error, len(pods))
	inParallel(len(pods), func(i int) { statuses[i], errs[i] = pods[i].listStatus() })
	return statuses, errs
}

func (p *Pod) listStatus() (*Status, error) {
	sum := p.sum
	if sum == nil {
		sum = p.summary()
	}
	if sum == nil && (p.dir == dirPrepared || p.dir == dirRun) {
		// Made again from the pod directory, and kept for next time; not
		// for a pod being prepared (its manifest comes last) or marked for
		// collection. A pod that moves on meanwhile takes it along.
		if s, err := p.makeSummary(); err == nil && p.storeSummary(s) == nil {
			sum = s
		}
	}
	if sum != nil && sum.Mutable {
		sum = nil // a sandbox's apps have states of their own
	}
	return p.readStatus(sum)
}
