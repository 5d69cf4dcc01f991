// The injection rule (spec/shell_check.h): a corpus of run: shapes that hand
// a value to a second interpreter, each refused at load time, and the safe
// shapes that must keep loading.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "spec/pipeline.h"

using sluice::spec::ParsePipeline;

namespace {

// A pipeline whose one step has `run_yaml` as its run: (a YAML value, which
// may be a block scalar) and `extra` as more step keys.
std::string Spec(const std::string& run_yaml, const std::string& extra = "") {
  return "name: p\nparams: {v: {type: string, default: x}}\nsteps:\n  a:\n    run: " + run_yaml + "\n" + extra;
}

std::string Block(const std::string& lines) {
  std::string out = "|\n";
  size_t start = 0;
  while (start < lines.size()) {
    size_t nl = lines.find('\n', start);
    if (nl == std::string::npos) nl = lines.size();
    out += "      " + lines.substr(start, nl - start) + "\n";
    start = nl + 1;
  }
  return out;
}

const std::vector<std::string> kRefused = {
    R"~(sh -c 'echo got ${{ params.v }}')~",
    R"~(sh -c "echo got ${{ params.v }}")~",
    R"~(bash -c "echo got ${{ params.v }}")~",
    R"~(bash -ec 'echo ${{ params.v }}')~",
    R"~(/bin/dash -c 'echo ${{ params.v }}')~",
    R"~(python3 -c 'print("${{ params.v }}")')~",
    R"~(python3 -c "print('${{ params.v }}')")~",
    R"~(perl -e 'print "${{ params.v }}"')~",
    R"~(perl -ne "print if /${{ params.v }}/" f.txt)~",
    R"~(awk '{print "${{ params.v }}"}' f.txt)~",
    R"~(awk "BEGIN { print \"${{ params.v }}\" }")~",
    R"~(node -e "console.log('${{ params.v }}')")~",
    R"~(node --eval 'console.log("${{ params.v }}")')~",
    R"~(ruby -e 'puts "${{ params.v }}"')~",
    R"~(eval "echo ${{ params.v }}")~",
    R"~(eval echo ${{ params.v }})~",
    Block("sh <<EOF\necho ${{ params.v }}\nEOF"),
    Block("cat <<'EOF' > x.sh\necho ${{ params.v }}\nEOF\nsh x.sh"),
    Block("cat <<-EOF\n\techo ${{ params.v }}\n\tEOF"),
    Block("python3 - <<'EOF'\nprint('${{ params.v }}')\nEOF"),
    R"~(echo `echo ${{ params.v }}`)~",
    R"~(echo "$(echo ${{ params.v }})")~",
    R"~(echo $(( ${{ params.v }} + 1 )))~",
    R"~(echo ${{ params.v }} | xargs sh -c 'echo $0')~",
    R"~(find . -name x -exec sh -c 'echo ${{ params.v }}' \;)~",
    R"~(ssh host "echo ${{ params.v }}")~",
    R"~(env X=1 sh -c "echo ${{ params.v }}")~",
    R"~(V="${{ params.v }}"; sh -c "echo $V")~",
    R"~(echo "${{ params.v }}" | sh)~",
    R"~(echo "${{ params.v }}" | python3)~",
    R"~(${{ params.v }} -c "echo ${{ params.v }}")~",
    R"~(sed "s/x/${{ params.v }}/" f.txt)~",
    R"~(sudo -u nobody python3 t.py "${{ params.v }}")~",
    R"~(timeout 10 python3 t.py "${{ params.v }}")~",
    R"~(python3 ${{ params.v }})~",
    R"~(python3 < prog.py "${{ params.v }}")~",
    R"~($PY t.py "${{ params.v }}")~",
    R"~(echo "${{ params.v }}" | sh -s)~",
    R"~(bash -c "echo $1" _ "${{ params.v }}")~",
    R"~(jq ".x = \"${{ params.v }}\"" f.json)~",
    R"~(echo "${X:-${{ params.v }}}")~",
    R"~([sh, -c, "echo ${{ params.v }}"])~",
    R"~([python3, -c, "print('${{ params.v }}')"])~",
    R"~([xargs, echo, "${{ params.v }}"])~",
};

const std::vector<std::string> kSafe = {
    R"~(echo ${{ params.v }})~",
    R"~(echo "got ${{ params.v }}")~",
    R"~(echo 'got ${{ params.v }}')~",
    R"~(./train.sh --lr=${{ params.v }} > out.txt)~",
    R"~(python3 train.py --name "${{ params.v }}")~",
    R"~(python3 -u -W ignore train.py "${{ params.v }}")~",
    R"~(bash script.sh "${{ params.v }}")~",
    R"~(bash -o pipefail script.sh ${{ params.v }})~",
    R"~(perl script.pl "${{ params.v }}" 2>&1)~",
    R"~(node app.js "${{ params.v }}")~",
    R"~(printf '%s\n' "${{ params.v }}" > "$SLUICE_OUTPUT")~",
    R"~(for x in ${{ params.v }}; do echo "$x"; done)~",
    R"~(echo "${{ params.v }}" | tee out.txt)~",
    R"~(X="${{ params.v }}" ./run.sh)~",
    R"~(cp in.txt "out-${{ params.v }}.txt" && wc -l "out-${{ params.v }}.txt")~",
    R"~(echo "${{ params.v }}"   # a comment may say sh -c)~",
    R"~(if test -n "${{ params.v }}"; then echo yes; fi)~",
    R"~(echo "$(date)" "${{ params.v }}")~",
    Block("cat > notes.txt <<'EOF'\nno expression here\nEOF\necho ${{ params.v }}"),
    R"~([python3, train.py, "${{ params.v }}"])~",
    R"~([echo, "${{ params.v }}"])~",
    R"~(${{ params.v }} --help)~",
    R"~(["${{ params.v }}", --help])~",
    R"~([./train, "--name=${{ params.v }}"])~",
    R"~(sh -c 'echo "got $1"' sh "${{ params.v }}")~",
    R"~([bash, -c, 'echo "$1"', _, "${{ params.v }}"])~",
    R"~(python3 -c 'import sys; print(sys.argv[1])' "${{ params.v }}")~",
    R"~(awk -v s="${{ params.v }}" '{print $1, s}' f.txt)~",
    R"~(awk -v s="$SCALE" '{print $1 * s}' "${{ params.v }}")~",
    R"~(jq --arg v "${{ params.v }}" '.x = $v' f.json)~",
    R"~(sed -e 's/a/b/' "${{ params.v }}")~",
    Block("python3 - \"${{ params.v }}\" <<'EOF'\nimport sys\nprint(sys.argv[1])\nEOF"),
};

}  // namespace

TEST(ShellCheckTest, RefusesEveryShapeThatHandsAValueToAnotherInterpreter) {
  ASSERT_GE(kRefused.size(), 25u);
  for (const std::string& run : kRefused) {
    auto p = ParsePipeline("p.yaml", Spec(run));
    EXPECT_FALSE(p.ok()) << "loaded: " << run;
    if (!p.ok()) {
      EXPECT_NE(p.status().message().find("would become part of a program"), std::string::npos)
          << run << "\n" << p.status().message();
    }
  }
}

TEST(ShellCheckTest, AcceptsTheSafeShapes) {
  for (const std::string& run : kSafe) {
    auto p = ParsePipeline("p.yaml", Spec(run));
    EXPECT_TRUE(p.ok()) << run << "\n" << (p.ok() ? "" : p.status().message());
  }
}

TEST(ShellCheckTest, AcceptsAValuePassedThroughEnvToAnInnerProgram) {
  auto p = ParsePipeline("p.yaml", Spec(R"~(sh -c 'echo "got $V"')~", "    env: {V: \"${{ params.v }}\"}\n"));
  EXPECT_TRUE(p.ok()) << p.status().message();
}

TEST(ShellCheckTest, RefusalNamesTheExpressionItsPlaceAndTheWayOut) {
  auto p = ParsePipeline("p.yaml", Spec(R"~(sh -c 'echo got ${{ params.v }}')~"));
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(),
            "p.yaml:5:26: step 'a': ${{ params.v }} would become part of a program: this line runs `sh -c` with "
            "program text that is not written out literally; pass the value through the step's env: (env: {VALUE: \"${{ ... }}\"}) "
            "and use \"$VALUE\" in the program (specs/pipeline.md, \"Values never become code\")");
}

TEST(ShellCheckTest, RefusesEachExpressionOfARefusedLineAtItsOwnColumn) {
  auto p = ParsePipeline("p.yaml", Spec(R"~(eval ${{ params.v }} ${{ params.v }})~"));
  ASSERT_FALSE(p.ok());
  const std::string& m = p.status().message();
  EXPECT_NE(m.find("p.yaml:5:15: step 'a': ${{ params.v }} would become part of a program: this line runs `eval`"),
            std::string::npos) << m;
  EXPECT_NE(m.find("p.yaml:5:31: step 'a'"), std::string::npos) << m;
}

TEST(ShellCheckTest, ALineWithoutExpressionsMayRunAnyInterpreter) {
  auto p = ParsePipeline("p.yaml", Spec(R"~(sh -c 'echo "$HOME"' && python3 -c 'print(1)' && eval true)~"));
  EXPECT_TRUE(p.ok()) << p.status().message();
}
