// Loaded into every test process by scripts/test (`node --import`). A failing property shrinks its
// counterexample one run at a time, and a chain of files on disk can take minutes to shrink (160 s
// measured for the LTX compaction property): past this limit fast-check stops shrinking and reports
// the failure with the smallest counterexample found so far, its seed and its path. A property that
// has not failed when the limit passes ends with the runs it made (fast-check counts that a success
// unless none ran); every property here finishes in seconds, so the limit only cuts shrinking.

import fc from "fast-check";

fc.configureGlobal({ interruptAfterTimeLimit: 60_000 });
