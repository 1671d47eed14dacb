package dev.cacheextension.client;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.DisplayName;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.Timeout;

/**
 * The shared contract table (tests/contract/cases.json) against a real extension: one dynamic test per case,
 * named by its id, in the table's order. tests/test_clients.py runs it with
 *
 * <pre>
 *   CONTRACT_CASES=... CACHE_EXTENSION_PORT=... AWS_SESSION_TOKEN=... CONTRACT_DOWN_PORT=... CONTRACT_TRAP_PORT=... mvn -B -q -o test
 * </pre>
 *
 * Without CONTRACT_CASES it is skipped (a plain {@code mvn test} runs the unit tests only). With CONTRACT_STARTUP=1
 * only the cases marked "startup" run, otherwise only the others. With CONTRACT_GATE=FILE it writes FILE.waiting
 * once its cases are ready and waits (at most 2 minutes) for FILE to exist before the first: Maven takes longer to
 * start than the extension does, so the test suite launches the extension, with its port still closed, only then.
 */
class ContractTest {

    /** A case's bound: a child JVM's (30 s) and a little more. */
    private static final Duration CASE_TIMEOUT = Duration.ofSeconds(45);
    private static final Duration GATE_TIMEOUT = Duration.ofMinutes(2);

    @TestFactory
    @DisplayName("contract")
    @Timeout(150) // building the cases, and the gate
    List<DynamicTest> contract() throws Exception {
        String casesPath = System.getenv("CONTRACT_CASES");
        if (casesPath == null || casesPath.isEmpty()) { // one skipped test that says why, in the reports too
            return List.of(DynamicTest.dynamicTest("contract table", () -> assumeTrue(false, "skipped: CONTRACT_CASES is not "
                    + "set; the contract table runs against a running extension (tests/test_clients.py sets CONTRACT_CASES, "
                    + "CACHE_EXTENSION_PORT, AWS_SESSION_TOKEN, CONTRACT_DOWN_PORT and CONTRACT_TRAP_PORT)")));
        }
        boolean startup = "1".equals(System.getenv("CONTRACT_STARTUP"));
        ContractRun table = new ContractRun(Path.of(casesPath));
        List<DynamicTest> tests = new ArrayList<>();
        for (Map<String, Object> testCase : table.cases) {
            if (ContractRun.startup(testCase) == startup) {
                tests.add(DynamicTest.dynamicTest(ContractRun.id(testCase), () -> check(table, testCase)));
            }
        }
        assertFalse(tests.isEmpty(), "the table has no " + (startup ? "startup " : "") + "cases");
        awaitGate(System.getenv("CONTRACT_GATE"));
        return tests;
    }

    private static void check(ContractRun table, Map<String, Object> testCase) {
        String why = assertTimeoutPreemptively(CASE_TIMEOUT, () -> ContractRun.counted(testCase,
                ContractRun.hasEnv(testCase)
                        // The child's JVM makes no request before its client exists: counting around it is the same.
                        ? () -> ContractChild.runInChild(testCase)
                        : () -> table.run(testCase)));
        if (why != null) {
            fail(why);
        }
    }

    private static void awaitGate(String gate) throws Exception {
        if (gate == null || gate.isEmpty()) {
            return;
        }
        Files.writeString(Path.of(gate + ".waiting"), "");
        long deadline = System.nanoTime() + GATE_TIMEOUT.toNanos();
        while (!Files.exists(Path.of(gate))) {
            if (System.nanoTime() > deadline) {
                fail("CONTRACT_GATE " + gate + " was not opened within " + GATE_TIMEOUT.toSeconds() + " s");
            }
            Thread.sleep(10);
        }
    }
}
