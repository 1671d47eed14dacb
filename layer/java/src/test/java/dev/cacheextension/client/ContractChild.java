package dev.cacheextension.client;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * A contract case with "env" runs in a child JVM started with that environment, so that its client takes its
 * port and token from its real process environment ({@code System.getenv()} cannot be changed). {@link #runInChild} starts
 * it; {@link #main} is the child: it runs the one case CONTRACT_ONLY names and prints "ok ID" or "FAIL ID: why".
 */
final class ContractChild {

    /** A child runs one case: its JVM's start plus at most one case's time. */
    static final long CHILD_TIMEOUT_SECONDS = 30;

    /**
     * What a case's env value may stand for: the parent's token, extension port, a port nothing listens on and one
     * that counts connections, and the file the parent wrote the case's valuesFile to.
     */
    private static final Set<String> PLACEHOLDERS = Set.of("$TOKEN", "$PORT", "$DOWN_PORT", "$TRAP_PORT", "$VALUES_FILE");

    private ContractChild() {
    }

    public static void main(String[] args) {
        String only = System.getenv("CONTRACT_ONLY");
        String why;
        try {
            ContractRun table = new ContractRun(Path.of(System.getenv("CONTRACT_CASES")));
            List<Map<String, Object>> named = new ArrayList<>();
            for (Map<String, Object> testCase : table.cases) {
                if (ContractRun.id(testCase).equals(only)) {
                    named.add(testCase);
                }
            }
            if (named.size() != 1) {
                System.out.println("FAIL CONTRACT_ONLY names " + named.size() + " cases, not one");
                System.exit(1);
            }
            why = checkEnvironment(ContractRun.asMap(named.get(0).get("env")));
            why = why != null ? why : table.run(named.get(0)); // its parent counts the requests
        } catch (Exception e) {
            why = "test error: " + e;
        }
        System.out.println(why == null ? "ok " + only : "FAIL " + only + ": " + why);
        System.exit(why == null ? 0 : 1);
    }

    /**
     * In the child: the environment the parent gave it is the case's (every variable it names, and none of the
     * variables an env case replaces that it does not name); null when so.
     */
    private static String checkEnvironment(Map<String, Object> caseEnv) {
        Set<String> names = new LinkedHashSet<>(ContractRun.ENV_CASE_VARIABLES);
        names.addAll(caseEnv.keySet());
        for (String name : names) {
            Object want = caseEnv.get(name);
            String got = System.getenv(name);
            boolean matches;
            if (want == null) {
                matches = got == null;
            } else if (PLACEHOLDERS.contains(want)) {
                matches = got != null && !got.isEmpty(); // the parent's value, which the child may not have
            } else {
                matches = want.equals(got);
            }
            if (!matches) {
                return "test error: " + name + " in the child's environment is not what the case says";
            }
        }
        return null;
    }

    /**
     * Runs a case with "env" in a child JVM of this class, started with the case's environment; null when it
     * passed there, else why not (the child's output, with every token in it masked).
     */
    static String runInChild(Map<String, Object> testCase) throws Exception {
        if (!testCase.containsKey("valuesFile")) {
            return runInChild(testCase, null);
        }
        // The case's offline values in a file of their own, which "$VALUES_FILE" stands for.
        Path dir = Files.createTempDirectory("contract-values-");
        Path file = dir.resolve("values.json");
        try {
            Files.writeString(file, Json.write(testCase.get("valuesFile")), StandardCharsets.UTF_8);
            return runInChild(testCase, file.toString());
        } finally {
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
        }
    }

    private static String runInChild(Map<String, Object> testCase, String valuesFile) throws Exception {
        String id = ContractRun.id(testCase);
        if (testCase.containsKey("client") && ContractRun.asMap(testCase.get("client")).containsKey("token")) {
            return "test error: a case with env gives no token option";
        }
        String token = System.getenv("AWS_SESSION_TOKEN");
        if (token == null || token.isEmpty()) {
            return "test error: AWS_SESSION_TOKEN (the extension's token, \"$TOKEN\") is not set";
        }
        Map<String, String> placeholders = new LinkedHashMap<>();
        placeholders.put("$TOKEN", token);
        placeholders.put("$PORT", System.getenv("CACHE_EXTENSION_PORT"));
        placeholders.put("$DOWN_PORT", System.getenv("CONTRACT_DOWN_PORT"));
        placeholders.put("$TRAP_PORT", System.getenv("CONTRACT_TRAP_PORT"));
        placeholders.put("$VALUES_FILE", valuesFile);
        Map<String, String> variables = new LinkedHashMap<>();
        List<String> secrets = new ArrayList<>(List.of(token)); // masked in the child's output
        for (Map.Entry<String, Object> entry : ContractRun.asMap(testCase.get("env")).entrySet()) {
            String value = (String) entry.getValue();
            if (placeholders.containsKey(value)) {
                value = placeholders.get(value);
                if (value == null || value.isEmpty()) {
                    return "test error: " + entry.getValue() + " stands for a variable this runner does not have";
                }
            }
            variables.put(entry.getKey(), value);
            if (ContractRun.TOKEN_VARIABLES.contains(entry.getKey()) && !value.isEmpty()) {
                secrets.add(value);
            }
        }
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        // Under surefire java.class.path may be its booter jar alone; the test class path is in this property.
        String classPath = System.getProperty("surefire.test.class.path", System.getProperty("java.class.path"));
        // One case in a fresh JVM: the JIT's first tier and the serial collector start it soonest.
        ProcessBuilder builder = new ProcessBuilder(java, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", classPath,
                ContractChild.class.getName());
        Map<String, String> env = builder.environment();
        env.keySet().removeAll(ContractRun.ENV_CASE_VARIABLES);
        env.remove("CONTRACT_GATE");
        env.putAll(variables);
        env.put("CONTRACT_ONLY", id);
        Process child = builder.redirectErrorStream(true).start();
        CompletableFuture<byte[]> output = CompletableFuture.supplyAsync(() -> {
            try (InputStream in = child.getInputStream()) {
                return in.readAllBytes(); // ends when the child exits or is killed
            } catch (IOException e) {
                return ("(output not read: " + e.getClass().getSimpleName() + ")").getBytes(StandardCharsets.UTF_8);
            }
        });
        boolean exited = child.waitFor(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        if (!exited) {
            child.destroyForcibly().waitFor(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        }
        String text = new String(output.get(CHILD_TIMEOUT_SECONDS, TimeUnit.SECONDS), StandardCharsets.UTF_8);
        for (String secret : secrets) {
            text = text.replace(secret, "<token>");
        }
        if (exited && child.exitValue() == 0 && Arrays.asList(text.split("\n")).contains("ok " + id)) {
            return null;
        }
        String shown = "\n  | " + text.strip().replace("\n", "\n  | "); // never a line of its own starting "ok "
        return (exited ? "failed in its child JVM (exit " + child.exitValue() + "):" : "the child JVM did not finish within "
                + CHILD_TIMEOUT_SECONDS + " s:") + shown;
    }
}
