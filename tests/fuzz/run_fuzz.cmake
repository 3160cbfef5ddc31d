# Runs one libFuzzer target for a bounded time (ctest's fuzz.* entries):
#   cmake -DFUZZER=bin -DSEEDS=dir -DDICT=file -DWORK=dir -DSECONDS=n [-DOPTIONS=...] -P run_fuzz.cmake
# The seeds are copied into WORK/corpus, which the fuzzer then adds to;
# nothing is written into the source tree. Fails on any crash, sanitizer
# report or leak (libFuzzer exits non-zero; the input is in WORK/artifacts).
# An input that runs for over 60 s counts as a hang (on a loaded machine a
# few ms input was once seen taking 18 s, hence the margin).
foreach(v FUZZER SEEDS DICT WORK SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz.cmake: -D${v}=... is missing")
  endif()
endforeach()
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
file(COPY ${SEEDS}/ DESTINATION ${WORK}/corpus)
execute_process(
  COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=60 -print_final_stats=1
          -dict=${DICT} -artifact_prefix=${WORK}/artifacts/ ${OPTIONS} ${WORK}/corpus
  WORKING_DIRECTORY ${WORK}/artifacts # where fuzz_cmd writes its fuzz_cmd-epoch-*/
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit status ${rc}); the failing input is in ${WORK}/artifacts/")
endif()
