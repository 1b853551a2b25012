package stage0

// State is where a pod is in its life (see Documentation/design.md, "Pods").
type State int

// The pod states. The names are rkt's, as `orbit list` and `orbit status`
// print them.
const (
	Embryo State = iota
	Preparing
	AbortedPrepare
	Prepared
	Running
	Exited
	ExitedGarbage // exited, marked for collection
	ExitedDeleting
	Garbage // failed prepare, marked for collection
	Deleting
)

func (s State) String() string {
	switch s {
	case Embryo:
		return "embryo"
	case Preparing:
		return "preparing"
	case AbortedPrepare:
		return "aborted prepare"
	case Prepared:
		return "prepared"
	case Running:
		return "running"
	case Exited:
		return "exited"
	case ExitedGarbage:
		return "exited garbage"
	case ExitedDeleting:
		return "exited deleting"
	case Garbage:
		return "garbage"
	case Deleting:
		return "deleting"
	}
	return "unknown"
}

// stateDir names the directories under pods/ that pods live in.
type stateDir string

const (
	dirEmbryo        stateDir = "embryo"
	dirPrepare       stateDir = "prepare"
	dirPrepared      stateDir = "prepared"
	dirRun           stateDir = "run"
	dirExitedGarbage stateDir = "exited-garbage"
	dirGarbage       stateDir = "garbage"
)

// allStateDirs is the order in which a pod is looked for: the order of its
// life, so that a pod moving on while we look is found in the next one.
func allStateDirs() []stateDir {
	return []stateDir{dirEmbryo, dirPrepare, dirPrepared, dirRun, dirExitedGarbage, dirGarbage}
}

// stateFor says what state a pod in dir is in, given whether its directory
// is locked exclusively by someone else.
func stateFor(dir stateDir, locked bool) State {
	switch dir {
	case dirEmbryo:
		return Embryo
	case dirPrepare:
		if locked {
			return Preparing
		}
		return AbortedPrepare
	case dirPrepared:
		return Prepared
	case dirRun:
		if locked {
			return Running
		}
		return Exited
	case dirExitedGarbage:
		if locked {
			return ExitedDeleting
		}
		return ExitedGarbage
	case dirGarbage:
		if locked {
			return Deleting
		}
		return Garbage
	}
	return Embryo
}

// AfterRun reports whether the pod has been started at some point.
func (s State) AfterRun() bool {
	return s == Running || s == Exited || s == ExitedGarbage || s == ExitedDeleting
}
