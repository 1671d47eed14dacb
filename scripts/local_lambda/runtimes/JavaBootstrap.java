import dev.cacheextension.client.Json;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.lang.reflect.Constructor;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A minimal Java runtime for LOCAL RUNS ONLY: it stands in for Lambda's managed Java runtime under
 * scripts/run-local's emulator. On Lambda the managed runtime does this job; this class is never part of the
 * layer nor of a function's package. Java 11 source level, standard library only, plus the client jar's
 * {@link Json} for JSON (the layer's {@code /opt/java/lib/cache-extension-client.jar} is on the class path, as
 * on Lambda).
 *
 * <p>The loop of a custom runtime, written from AWS's Runtime API reference:
 * <ul>
 * <li>Init: load the class named by {@code _HANDLER} ({@code example.Handler::handleRequest} or
 * {@code example.Handler}, method {@code handleRequest} by default) and create one instance; a failure is
 * posted to {@code /runtime/init/error} and the process exits 1.</li>
 * <li>Invoke: {@code GET /runtime/invocation/next}, call the handler with the event decoded by {@link Json#parse}
 * (a {@code Map} for a JSON object), {@code POST .../response} with {@link Json#write} of the result, or
 * {@code POST .../error} with {@code {errorType, errorMessage, stackTrace}} when it throws.</li>
 * </ul>
 * Handler methods taking (event) or () are supported; one taking a {@code Context} is not (that interface lives
 * in aws-lambda-java-core, which this local stand-in does not have).
 */
public final class JavaBootstrap {

    private static final String BASE = "/2018-06-01/runtime";

    private final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
    private final String api;

    private JavaBootstrap(String api) {
        this.api = "http://" + api + BASE;
    }

    public static void main(String[] args) {
        String api = System.getenv("AWS_LAMBDA_RUNTIME_API");
        if (api == null || api.isEmpty()) {
            System.err.println("AWS_LAMBDA_RUNTIME_API is not set");
            System.exit(2);
        }
        String handler = System.getenv().getOrDefault("_HANDLER", "example.Handler::handleRequest");
        JavaBootstrap runtime = new JavaBootstrap(api);
        Object instance;
        Method method;
        try {
            String className = handler;
            String methodName = "handleRequest";
            int separator = handler.indexOf("::");
            if (separator >= 0) {
                className = handler.substring(0, separator);
                methodName = handler.substring(separator + 2);
            }
            Class<?> type = Class.forName(className, true, JavaBootstrap.class.getClassLoader());
            method = findMethod(type, methodName);
            if (Modifier.isStatic(method.getModifiers())) {
                instance = null;
            } else {
                Constructor<?> constructor = type.getDeclaredConstructor();
                instance = constructor.newInstance();
            }
        } catch (Throwable e) {
            Throwable cause = unwrap(e);
            String type = e instanceof ClassNotFoundException ? "Runtime.ClassNotFound"
                    : e instanceof NoSuchMethodException ? "Runtime.HandlerNotFound" : cause.getClass().getName();
            System.err.println("INIT failed: " + type + ": " + cause.getMessage());
            runtime.postQuietly("/init/error", errorDocument(cause, type), type);
            System.exit(1);
            return;
        }
        try {
            runtime.loop(instance, method);
        } catch (Exception e) {
            System.err.println("runtime loop failed: " + e);
            System.exit(1);
        }
    }

    private void loop(Object instance, Method method) throws Exception {
        while (true) {
            HttpResponse<String> next = http.send(
                    HttpRequest.newBuilder(URI.create(api + "/invocation/next")).GET().build(),
                    HttpResponse.BodyHandlers.ofString(StandardCharsets.UTF_8));
            if (next.statusCode() != 200) {
                throw new IllegalStateException("invocation/next answered " + next.statusCode());
            }
            String requestId = next.headers().firstValue("Lambda-Runtime-Aws-Request-Id").orElse("");
            next.headers().firstValue("Lambda-Runtime-Trace-Id")
                    .ifPresent(trace -> System.setProperty("com.amazonaws.xray.traceHeader", trace));
            String path = "/invocation/" + URLEncoder.encode(requestId, StandardCharsets.UTF_8);
            String body;
            try {
                Object event = next.body().isEmpty() ? new LinkedHashMap<String, Object>() : Json.parse(next.body());
                Object result = method.getParameterCount() == 0 ? method.invoke(instance) : method.invoke(instance, event);
                body = Json.write(result);
            } catch (Throwable e) {
                Throwable cause = unwrap(e);
                System.err.println("Invoke Error " + cause.getClass().getName() + ": " + cause.getMessage());
                post(path + "/error", errorDocument(cause, cause.getClass().getName()), "Unhandled");
                continue;
            }
            post(path + "/response", body, null);
        }
    }

    /** The public method of that name taking one parameter (the event) or none; one parameter preferred. */
    private static Method findMethod(Class<?> type, String name) throws NoSuchMethodException {
        Method best = null;
        for (Method candidate : type.getMethods()) {
            if (!candidate.getName().equals(name) || candidate.isBridge()) {
                continue;
            }
            int count = candidate.getParameterCount();
            if (count == 1 || (count == 0 && best == null)) {
                best = candidate;
            }
        }
        if (best == null) {
            throw new NoSuchMethodException(type.getName() + "::" + name + " with (event) or () parameters");
        }
        return best;
    }

    private static Throwable unwrap(Throwable e) {
        Throwable cause = e;
        while ((cause instanceof InvocationTargetException || cause instanceof ExceptionInInitializerError)
                && cause.getCause() != null) {
            cause = cause.getCause();
        }
        return cause;
    }

    private static String errorDocument(Throwable error, String type) {
        Map<String, Object> document = new LinkedHashMap<>();
        document.put("errorMessage", error.getMessage() == null ? "" : error.getMessage());
        document.put("errorType", type);
        List<Object> trace = new ArrayList<>();
        StringWriter text = new StringWriter();
        error.printStackTrace(new PrintWriter(text));
        for (String line : text.toString().split("\n")) {
            trace.add(line.strip());
        }
        document.put("stackTrace", trace);
        return Json.write(document);
    }

    private void post(String path, String body, String errorType) throws Exception {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(api + path))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body, StandardCharsets.UTF_8));
        if (errorType != null) {
            request.header("Lambda-Runtime-Function-Error-Type", errorType);
        }
        HttpResponse<String> answer = http.send(request.build(), HttpResponse.BodyHandlers.ofString());
        if (answer.statusCode() != 202) {
            System.err.println("the Runtime API refused " + path + ": " + answer.statusCode() + " " + answer.body());
        }
    }

    private void postQuietly(String path, String body, String errorType) {
        try {
            post(path, body, errorType);
        } catch (Exception e) {
            System.err.println("could not post " + path + ": " + e);
        }
    }
}
