"""nbgrader configuration of the course (read by every `nbgrader` command run in this directory).

Layout: solutions/<assignment>/<notebook>.ipynb (instructor source, with solutions and hidden
tests) -> `nbgrader generate_assignment` -> exercises/<assignment>/<notebook>.ipynb (the release
students get, committed). Students' work goes to submitted/<student>/<assignment>/, grading writes
autograded/ and feedback/, and the gradebook is gradebook.db here (all four are gitignored).
"""

c = get_config()  # noqa: F821  (nbgrader provides get_config when it loads this file)

c.CourseDirectory.course_id = "dropout-hands-on"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# Default gradebook: sqlite:///<course root>/gradebook.db (CourseDirectory.db_url).

# Seconds one cell may run during validate and autograde. nbgrader's Execute preprocessor
# (a subclass of nbconvert's ExecutePreprocessor) then interrupts the kernel, records a
# CellTimeoutError in that cell and goes on with the next cell, so a runaway loop costs the
# student that cell's tests, not the whole submission. The audit uses the same limit.
c.Execute.timeout = 60

# A test cell a student deleted is put back before grading, so deleting a failing test does not
# hide it (its tests run as usual).
c.OverwriteCells.add_missing_cells = True
